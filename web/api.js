// The dashboard's link to `backstop watch`: the JSON API (same origin, the
// bearer token from sessionStorage as a header, never a cookie) and the event
// stream /api/v1/events, read with fetch so that it carries the token too.

const TOKEN_KEY = 'backstop-api-token';

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Returns {status, body}; body is the parsed JSON (or {error} when it is not).
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    return { status: 0, body: { error: 'the daemon did not answer (' + e.message + ')' } };
  }
  let parsed;
  try {
    parsed = await res.json();
  } catch (e) {
    parsed = { error: 'HTTP ' + res.status };
  }
  return { status: res.status, body: parsed };
}

// Parses one SSE frame ("id:", "event:", "data:" lines) into {id, type, data}.
function parseFrame(frame) {
  const ev = { type: 'message', data: '' };
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') ev.type = value;
    else if (field === 'data') ev.data += value;
    else if (field === 'id') ev.id = value;
  }
  if (!ev.data) return null;
  try {
    ev.data = JSON.parse(ev.data);
  } catch (e) {
    return null;
  }
  return ev;
}

// Follows /api/v1/events until stop() is called: onEvent(ev) for each event,
// onMode(mode) with 'live' (connected), 'polling' (not connected: the page
// polls) or 'unauthorized' (the token was refused: it stops trying).
export function followEvents(onEvent, onMode) {
  let stopped = false;
  let controller = null;
  let retry = null;
  async function connect() {
    const token = getToken();
    if (!token) {
      onMode('polling');
      return;
    }
    controller = new AbortController();
    try {
      const res = await fetch('/api/v1/events', {
        headers: { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' },
        signal: controller.signal,
        cache: 'no-store',
      });
      if (res.status === 401) {
        onMode('unauthorized');
        return;
      }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      onMode('live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const ev = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (ev) onEvent(ev);
        }
      }
    } catch (e) {
      if (stopped) return;
    }
    if (stopped) return;
    // Dropped (the daemon restarted, or this page read too slowly): poll
    // until the stream is back; the caller reloads the whole state.
    onMode('polling');
    retry = setTimeout(connect, 3000);
  }
  connect();
  return function stop() {
    stopped = true;
    if (retry) clearTimeout(retry);
    if (controller) controller.abort();
  };
}
