#!/usr/bin/env node
// A fault-injecting HTTP proxy in front of an S3 server (s3rver), for tests of
// the S3 client's retries and of what a broken upload leaves behind.
//
//   node tests/tools/s3-fault-proxy.mjs --port P --upstream http://127.0.0.1:U
//        [--control-file F]
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
// Loopback only; no dependencies but node's own modules.
import fs from 'node:fs';
import http from 'node:http';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(arg('--port', '0'));
const upstream = new URL(arg('--upstream', 'http://127.0.0.1:4568'));
const controlFile = arg('--control-file', '');

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
  log(drop ? 'forwarding half of the body, then dropping' : 'forwarded');
  forward(req, res, drop);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`s3-fault-proxy listening on 127.0.0.1:${server.address().port} -> ${upstream}`);
});
