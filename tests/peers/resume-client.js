// A client living through a dashboard restart (tests/resume.rs), on node `ws` with permessage-deflate
// offered the library's way (context takeover on the client side unless the server says otherwise).
// Usage: node resume-client.js URL
// Env: EVERY=ms between sends (0: never send), DURATION=ms before it closes with 1000 (0: stay until the
// server closes), SIZE=bytes of padding per message, RANDOM=1 incompressible padding.
// Sends numbered text messages, checks that every echo is byte-exact, and prints JSON lines:
// {"open": {"extensions": …}}, {"sent": n, "t": ms}, {"echo": n, "t": ms}, {"bad": n},
// {"other": {"len": …, "sha256": …}} for a message that is not an echo, {"close": code, "reason": …},
// and at the end {"summary": {…}}.
'use strict';
const crypto = require('crypto');
const WebSocket = require('ws');

const every = parseInt(process.env.EVERY || '50', 10);
const duration = parseInt(process.env.DURATION || '0', 10);
const size = parseInt(process.env.SIZE || '2000', 10);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const sent = new Map();
const summary = { opens: 0, sent: 0, echoed: 0, bad: 0, other: 0, closes: [], extensions: null };
const ws = new WebSocket(process.argv[2], { perMessageDeflate: true, maxPayload: 256 * 1024 * 1024 });
let timer = null;
let n = 0;

function body(i) {
  const pad = process.env.RANDOM === '1'
    ? crypto.randomBytes(size / 2).toString('hex')
    : `∆DΩΛ ${i} `.repeat(Math.ceil(size / 12)).slice(0, size);
  return JSON.stringify({ i, pad });
}

ws.on('upgrade', (res) => { summary.extensions = res.headers['sec-websocket-extensions'] || null; });
ws.on('open', () => {
  summary.opens += 1;
  out({ open: { extensions: summary.extensions } });
  if (every > 0) {
    timer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      const i = n++;
      const b = body(i);
      sent.set(i, b);
      ws.send(b);
      summary.sent += 1;
      out({ sent: i, t: Date.now() });
    }, every);
  }
  if (duration > 0) setTimeout(() => ws.close(1000, 'done'), duration);
});
ws.on('message', (data, isBinary) => {
  const s = data.toString();
  let i = null;
  try { i = JSON.parse(s).i; } catch (e) { i = null; }
  if (!isBinary && i !== null && sent.has(i)) {
    if (sent.get(i) === s) { summary.echoed += 1; out({ echo: i, t: Date.now() }); }
    else { summary.bad += 1; out({ bad: i }); }
    sent.delete(i);
  } else {
    summary.other += 1;
    out({ other: { len: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex'), binary: isBinary } });
  }
});
ws.on('error', (e) => out({ error: String(e.message || e) }));
ws.on('close', (code, reason) => {
  if (timer) clearInterval(timer);
  summary.closes.push({ code, reason: reason.toString() });
  out({ close: code, reason: reason.toString() });
  out({ summary });
  process.exit(0);
});
