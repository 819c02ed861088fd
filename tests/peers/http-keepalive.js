// A keep-alive HTTP/1.1 upstream that answers 200 to every request it reads — upgrade requests too —
// and keeps the connection open for the next one (what a dashboard behind a refused upgrade looks like).
// Usage: node http-keepalive.js [port]; prints {"port": N} once listening, then one JSON line per
// request head it read: {"request": "GET / HTTP/1.1", "headers": {lower-case name: value, …}}.
// Heads are split by hand (node `net`), so every pipelined request that reaches it is seen.
'use strict';
const net = require('net');

const port = parseInt(process.argv[2] || '0', 10);
const server = net.createServer((socket) => {
  socket.on('error', () => {});
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      buf = buf.subarray(end + 4);
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) {
          const k = l.slice(0, i).trim().toLowerCase();
          headers[k] = headers[k] === undefined ? l.slice(i + 1).trim() : `${headers[k]}, ${l.slice(i + 1).trim()}`;
        }
      }
      process.stdout.write(JSON.stringify({ request: lines[0], headers }) + '\n');
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n');
    }
  });
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
