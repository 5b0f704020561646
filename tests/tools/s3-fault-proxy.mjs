#!/usr/bin/env node
// A fault-injecting HTTP proxy in front of an S3 server (s3rver), for tests of
// the S3 client's retries and of what a broken upload leaves behind.
//
//   node tests/tools/s3-fault-proxy.mjs --port P --upstream http://127.0.0.1:U
//        [--control-file F] [--sigv4-secret SECRET]
//
// It forwards every request to the upstream as it came (headers included, so
// signatures stay valid) unless a fault mode says otherwise:
//   pass                 forward (the default)
//   fail500 N            answer 500 InternalError to the next N requests, then pass
//   drop-mid-upload [N]  forward half of a PUT's body, then close both
//                        connections (the next N PUTs; every PUT without N)
//   stall                accept requests and never answer them
// The mode is set with `POST /__fault/<mode>` (a space as %20 or '/':
// /__fault/fail500/2), or read from the control file (when given) before
// each request. `GET /__fault/count` answers how many requests were proxied
// or faulted (control requests excluded); `GET /__fault/mode` the mode.
//
// With --sigv4-secret, the proxy also checks what s3rver does not: every
// request's AWS Signature Version 4 (recomputed from the request as it
// arrived, with SECRET, the canonical form from AWS's documentation) and
// that x-amz-content-sha256 is the SHA-256 of the body. A bad signature is
// answered 403 SignatureDoesNotMatch, a wrong hash 400
// XAmzContentSHA256Mismatch, as S3 does; neither reaches the upstream.
// (A PUT that drop-mid-upload cuts is not checked.)
// Loopback only; no dependencies but node's own modules.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(arg('--port', '0'));
const upstream = new URL(arg('--upstream', 'http://127.0.0.1:4568'));
const controlFile = arg('--control-file', '');
const sigv4Secret = arg('--sigv4-secret', '');

let mode = 'pass';
let remaining = Infinity;  // requests the current fault still applies to
let count = 0;
const stalled = [];  // kept referenced so that they stay open

function setMode(text) {
  const parts = text.trim().split(/[\s/]+/).filter(Boolean);
  const name = parts[0] || 'pass';
  if (!['pass', 'fail500', 'drop-mid-upload', 'stall'].includes(name)) {
    throw new Error(`unknown mode "${text}"`);
  }
  let n = Infinity;
  if (parts.length > 1) {
    n = Number(parts[1]);
    if (!Number.isInteger(n) || n < 0) throw new Error(`bad count in "${text}"`);
  } else if (name === 'fail500') {
    n = 1;
  }
  mode = name;
  remaining = n;
}

let lastControl = null;
function readControlFile() {
  if (!controlFile) return;
  let text;
  try {
    text = fs.readFileSync(controlFile, 'utf8');
  } catch {
    return;
  }
  if (text !== lastControl) {
    lastControl = text;
    setMode(text);
  }
}

// Takes one use of the current fault; back to pass when it is used up.
function take(name) {
  if (mode !== name || remaining <= 0) return false;
  remaining -= 1;
  if (remaining <= 0) {
    mode = 'pass';
    remaining = Infinity;
  }
  return true;
}

// RFC 3986 percent-encoding of everything but the unreserved characters,
// as SigV4 wants it.
function uriEncode(text, keepSlash) {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) {
      out += c;
    } else {
      out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
    }
  }
  return out;
}

const sha256Hex = (data) => crypto.createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();

// Why the request's signature or payload hash is wrong, or '' when both are right.
function sigv4Problem(req, body) {
  const auth = req.headers['authorization'] || '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^,]+),\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]+)$/
    .exec(auth);
  if (!m) return ['SignatureDoesNotMatch', 'no AWS4-HMAC-SHA256 Authorization header'];
  const [, credential, signedList, signature] = m;
  const [, date, region, service, terminator] = credential.split('/');
  const signed = signedList.split(';');
  for (const needed of ['host', 'x-amz-content-sha256', 'x-amz-date']) {
    if (!signed.includes(needed)) return ['SignatureDoesNotMatch', `${needed} is not signed`];
  }
  if (req.headers['x-amz-security-token'] !== undefined &&
      !signed.includes('x-amz-security-token')) {
    return ['SignatureDoesNotMatch', 'x-amz-security-token is not signed'];
  }
  const payload = req.headers['x-amz-content-sha256'];
  if (payload !== sha256Hex(body)) {
    return ['XAmzContentSHA256Mismatch', 'x-amz-content-sha256 is not the hash of the body'];
  }
  const [rawPath, rawQuery = ''] = req.url.split('?', 2);
  const path = rawPath.split('/').map((p) => uriEncode(decodeURIComponent(p), false)).join('/');
  const query = rawQuery === '' ? [] : rawQuery.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    return [uriEncode(decodeURIComponent(name), false),
      uriEncode(decodeURIComponent(value.replace(/\+/g, '%20')), false)];
  });
  query.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const headers = signed.map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`);
  const canonical = [req.method, path, query.map(([k, v]) => `${k}=${v}`).join('&'),
    headers.join(''), signedList, payload].join('\n');
  const scope = `${date}/${region}/${service}/${terminator}`;
  const toSign = ['AWS4-HMAC-SHA256', req.headers['x-amz-date'], scope, sha256Hex(canonical)]
    .join('\n');
  let key = hmac('AWS4' + sigv4Secret, date);
  key = hmac(key, region);
  key = hmac(key, service);
  key = hmac(key, terminator);
  const expected = crypto.createHmac('sha256', key).update(toSign).digest('hex');
  if (expected !== signature) {
    return ['SignatureDoesNotMatch', `canonical request:\n${canonical}`];
  }
  return '';
}

function s3Error(res, status, code, message) {
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': body.length });
  res.end(body);
}

// Reads the whole body, checks the signature, then forwards it.
function verifyThenForward(req, res, log) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const problem = sigv4Problem(req, body);
    if (problem) {
      log(`refused: ${problem[0]}: ${problem[1]}`);
      s3Error(res, problem[0] === 'SignatureDoesNotMatch' ? 403 : 400, problem[0],
        problem[0] === 'SignatureDoesNotMatch'
          ? 'The request signature we calculated does not match the signature you provided.'
          : 'The provided x-amz-content-sha256 header does not match what was computed.');
      return;
    }
    log('signature ok, forwarded');
    const out = http.request({
      host: upstream.hostname, port: upstream.port, method: req.method, path: req.url,
      headers: req.headers,
    }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.socket?.destroy());
    out.end(body);
  });
}

function forward(req, res, dropHalfway) {
  const headers = { ...req.headers };
  const out = http.request({
    host: upstream.hostname,
    port: upstream.port,
    method: req.method,
    path: req.url,
    headers,
  }, (up) => {
    res.writeHead(up.statusCode, up.headers);
    up.pipe(res);
  });
  out.on('error', () => {
    if (!res.headersSent) {
      res.socket?.destroy();
    } else {
      res.destroy();
    }
  });
  if (!dropHalfway) {
    req.pipe(out);
    return;
  }
  const total = Number(req.headers['content-length'] || 0);
  const half = Math.floor(total / 2);
  let sent = 0;
  let dropped = false;
  req.on('data', (chunk) => {
    if (dropped) return;
    const room = half - sent;
    if (chunk.length < room) {
      out.write(chunk);
      sent += chunk.length;
      return;
    }
    if (room > 0) out.write(chunk.subarray(0, room));
    dropped = true;
    // Give the upstream the half, then cut both sides off mid-body.
    setTimeout(() => {
      out.destroy();
      req.socket.destroy();
    }, 50);
  });
  req.on('end', () => {
    if (!dropped) out.end();
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://proxy');
  if (url.pathname.startsWith('/__fault')) {
    const rest = decodeURIComponent(url.pathname.slice('/__fault'.length)).replace(/^\//, '');
    if (req.method === 'GET' && rest === 'count') {
      res.end(String(count));
    } else if (req.method === 'GET' && rest === 'mode') {
      res.end(`${mode}${remaining === Infinity ? '' : ' ' + remaining}`);
    } else if (req.method === 'POST') {
      try {
        setMode(rest);
        res.end('ok');
      } catch (e) {
        res.statusCode = 400;
        res.end(String(e.message));
      }
    } else {
      res.statusCode = 404;
      res.end('unknown control request');
    }
    req.resume();
    return;
  }
  try {
    readControlFile();
  } catch (e) {
    console.error(`control file: ${e.message}`);
  }
  count += 1;
  const log = (what) => console.log(`#${count} ${req.method} ${req.url}: ${what}`);
  if (take('stall')) {
    log('stalled');
    stalled.push(req);
    req.resume();
    return;
  }
  if (take('fail500')) {
    log('500');
    req.resume();
    req.on('end', () => {
      const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>' +
        '<Message>injected by s3-fault-proxy</Message></Error>';
      res.writeHead(500, { 'Content-Type': 'application/xml', 'Content-Length': body.length });
      res.end(body);
    });
    return;
  }
  const hasBody = Number(req.headers['content-length'] || 0) > 0;
  const drop = req.method === 'PUT' && hasBody && take('drop-mid-upload');
  if (sigv4Secret && !drop) {
    verifyThenForward(req, res, log);
    return;
  }
  log(drop ? 'forwarding half of the body, then dropping' : 'forwarded');
  forward(req, res, drop);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`s3-fault-proxy listening on 127.0.0.1:${server.address().port} -> ${upstream}`);
});
