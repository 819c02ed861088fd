// A dashboard-like upstream for the tests, on the library the Iskra dashboards use (node `ws` 8).
// Usage: node ws-server.js [port]   (0 = any free port; prints {"port": N} on stdout once listening)
// Env: DEFLATE=1 enables permessage-deflate; PLAIN_ECHO=1 turns the text commands off (Autobahn); PROTOCOLS=a,b lists subprotocols it accepts;
// RECORD=FILE appends every text message received, as a JSON string on a line of its own, to FILE (synchronously, before
// any later frame — a ping included — is processed); NO_PONG=1 never answers pings (a dashboard that reads but never confirms).
// WebSocket: echoes every message; a text message "close:CODE:REASON" makes it close with CODE/REASON;
// "hello?" gets the request headers it saw back as JSON; "pongs?" gets the number of pongs it received on
// that connection; "stream:N" makes it send N numbered messages.
// HTTP: /health (JSON), /sse (5 events, 200 ms apart), /echo (echoes method, headers and body),
// /status/NNN (answers NNN), /forbidden-ws (upgrade refused with 401), /resume-page (tests/peers/resume-page.html).
'use strict';
const fs = require('fs');
const http = require('http');
const { WebSocketServer } = require('ws');

const port = parseInt(process.argv[2] || '0', 10);
const accepted = (process.env.PROTOCOLS || 'iskra.v1,iskra.v2').split(',');

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'HEALTHY' }));
  } else if (url.pathname === '/sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let n = 0;
    const t = setInterval(() => {
      res.write(`id: ${n}\ndata: {"n": ${n}, "t": ${Date.now()}}\n\n`);
      if (++n === 5) { clearInterval(t); res.end(); }
    }, 200);
    req.on('close', () => clearInterval(t));
  } else if (url.pathname === '/echo') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'node-ws' });
      res.end(JSON.stringify({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString() }));
    });
  } else if (url.pathname === '/resume-page') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(fs.readFileSync(require('path').join(__dirname, 'resume-page.html')));
  } else if (url.pathname.startsWith('/status/')) {
    res.writeHead(parseInt(url.pathname.slice(8), 10), { 'content-type': 'text/plain' });
    res.end('status\n');
  } else {
    res.writeHead(404);
    res.end('not found\n');
  }
});

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: process.env.DEFLATE === '1',
  maxPayload: 64 * 1024 * 1024,
  autoPong: process.env.NO_PONG !== '1',
  handleProtocols: (protocols) => {
    for (const p of accepted) if (protocols.has(p)) return p;
    return false;
  },
});

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  if (req.url.startsWith('/forbidden-ws')) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nunauthorized\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

wss.on('connection', (ws, req) => {
  ws.on('error', () => {});
  let pongs = 0;
  ws.on('pong', () => { pongs += 1; });
  ws.on('message', (data, isBinary) => {
    if (!isBinary && process.env.RECORD) fs.appendFileSync(process.env.RECORD, JSON.stringify(data.toString()) + '\n');
    if (!isBinary && process.env.PLAIN_ECHO !== '1') {
      const s = data.toString();
      if (s.startsWith('close:')) {
        const [, code, ...reason] = s.split(':');
        ws.close(parseInt(code, 10), reason.join(':'));
        return;
      }
      if (s === 'pongs?') {
        ws.send(JSON.stringify({ pongs }));
        return;
      }
      if (s === 'hello?') {
        ws.send(JSON.stringify({ url: req.url, headers: req.headers, extensions: ws.extensions, protocol: ws.protocol }));
        return;
      }
      if (s.startsWith('stream:')) {
        const n = parseInt(s.slice(7), 10);
        for (let i = 0; i < n; i++) ws.send(`msg ${i}`);
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
