// Third-party dashboards and their own real clients, for tests/dashboards.rs.
//
//   node third-party.js server <kind> [port]     prints {"port": N}, serves until killed
//   node third-party.js client <kind> <url>      prints {"transcript": …, "close_code": N, …} and exits
//
// kinds:
//   socketio  Socket.IO 4 (socket.io + socket.io-client): long-polling, then the upgrade to WebSocket at
//             /socket.io/?EIO=4&transport=websocket; a room, acks both ways, 49 ticks; pings every 200 ms.
//   graphql   graphql-ws on `ws` at /graphql; the upgrade needs the `graphql-transport-ws` subprotocol
//             (400 without it) and connection_init within 0.5 s; a query and a subscription.
//   token     `ws` on /: 401 unless the upgrade carries `Authorization: Bearer $TOKEN` or
//             `Cookie: session=$COOKIE` (env TOKEN, COOKIE); greets, then echoes.
//   subpath   `ws` whose WebSocket lives on /api/v2/live only (400 elsewhere); greets, then echoes.
//   demo      (client only) the seed's demo dashboard at /: echoes of what the client sent.
'use strict';

const http = require('http');
const WebSocket = require('ws');

const [, , role, kind, arg] = process.argv;
const TICKS = 49;
const ACKS = 20;

function listen(server) {
  server.listen(Number(arg || 0), '127.0.0.1', () => {
    console.log(JSON.stringify({ port: server.address().port }));
  });
}

function echoServer(opts) {
  const server = http.createServer((req, res) => {
    res.writeHead(404);
    res.end('not here\n');
  });
  const wss = new WebSocket.WebSocketServer({ server, ...opts });
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.send(JSON.stringify({ type: 'welcome', server: kind }));
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  listen(server);
}

function servers() {
  if (kind === 'socketio') {
    const { Server } = require('socket.io');
    const server = http.createServer();
    // Short heartbeats: a client that does not answer Engine.IO's ping ("2" → "3") is dropped in 0.6 s.
    const io = new Server(server, { pingInterval: 200, pingTimeout: 400 });
    io.on('connection', (socket) => {
      socket.on('join', (room, ack) => {
        socket.join(room);
        ack('joined ' + room);
        io.to(room).emit('room', { room, members: io.sockets.adapter.rooms.get(room).size });
      });
      socket.on('ask', (n, ack) => ack({ answer: n * 2 }));
      socket.on('start', async () => {
        for (let i = 0; i < ACKS; i++) {
          const reply = await socket.timeout(5000).emitWithAck('question', i);
          socket.emit('answered', reply);
        }
        for (let n = 1; n <= TICKS; n++) socket.emit('tick', { n, text: 'ä'.repeat(n % 7) });
        socket.emit('done');
      });
    });
    listen(server);
  } else if (kind === 'graphql') {
    const { buildSchema } = require('graphql');
    const { useServer } = require('graphql-ws/use/ws');
    const schema = buildSchema('type Query { hello: String } type Subscription { countdown(from: Int!): Int }');
    const roots = {
      query: { hello: () => 'world' },
      subscription: {
        countdown: async function* ({ from }) {
          for (let i = from; i >= 0; i--) yield { countdown: i };
        },
      },
    };
    const server = http.createServer((req, res) => {
      res.writeHead(404);
      res.end();
    });
    const wss = new WebSocket.WebSocketServer({
      server,
      path: '/graphql',
      verifyClient: (info, done) => {
        const offered = (info.req.headers['sec-websocket-protocol'] || '').split(',').map((s) => s.trim());
        if (offered.includes('graphql-transport-ws')) done(true);
        else done(false, 400, 'the graphql-transport-ws subprotocol is required');
      },
    });
    useServer(
      // A client that sends no connection_init within 0.5 s is closed (4408).
      { schema, roots, connectionInitWaitTimeout: 500 },
      wss,
    );
    listen(server);
  } else if (kind === 'token') {
    const token = process.env.TOKEN;
    const cookie = process.env.COOKIE;
    echoServer({
      verifyClient: (info, done) => {
        const h = info.req.headers;
        const ok = h.authorization === `Bearer ${token}` ||
          (h.cookie || '').split(';').map((s) => s.trim()).includes(`session=${cookie}`);
        if (ok) done(true);
        else done(false, 401, 'Unauthorized', { 'WWW-Authenticate': 'Bearer' });
      },
    });
  } else if (kind === 'subpath') {
    echoServer({ path: '/api/v2/live' });
  } else {
    throw new Error('unknown server kind ' + kind);
  }
}

// Exit once the line is written: a pipe's writes are asynchronous, and exit() would cut them.
function done(out) {
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}

function fail(why) {
  process.stdout.write(JSON.stringify({ error: String(why) }) + '\n', () => process.exit(1));
}

function clients(url) {
  setTimeout(() => fail('client timed out'), 20000).unref();
  if (kind === 'socketio') {
    const { io } = require('socket.io-client');
    const socket = io(url, { transports: ['polling', 'websocket'], reconnection: false });
    const t = { connect_transport: null, upgraded_to: null, joined: null, room: [], acks: [], answered: [], ticks: [] };
    let closeCode = null;
    socket.io.on('open', () => {
      t.connect_transport = socket.io.engine.transport.name;
    });
    socket.io.engine.on('upgrade', (transport) => {
      t.upgraded_to = transport.name;
      transport.ws.addEventListener('close', (e) => {
        closeCode = e.code;
      });
      socket.emit('join', 'r1', async (j) => {
        t.joined = j;
        for (let i = 0; i < ACKS; i++) t.acks.push(await socket.emitWithAck('ask', i));
        socket.emit('start');
      });
    });
    socket.on('connect_error', (e) => fail(e.message));
    socket.on('room', (m) => t.room.push(m));
    socket.on('question', (n, ack) => ack({ got: n }));
    socket.on('answered', (r) => t.answered.push(r));
    socket.on('tick', (m) => t.ticks.push(m));
    socket.on('done', () => {
      socket.disconnect();
      const wait = setInterval(() => {
        if (closeCode !== null) {
          clearInterval(wait);
          done({ transcript: t, close_code: closeCode, path: '/socket.io/' });
        }
      }, 10);
    });
  } else if (kind === 'graphql') {
    const { createClient } = require('graphql-ws');
    let closeCode = null;
    const client = createClient({
      url,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      on: { closed: (e) => { closeCode = e.code; } },
    });
    const collect = (payload) => new Promise((resolve, reject) => {
      const got = [];
      client.subscribe(payload, { next: (d) => got.push(d), error: reject, complete: () => resolve(got) });
    });
    (async () => {
      const hello = await collect({ query: '{ hello }' });
      const countdown = await collect({ query: 'subscription { countdown(from: 5) }' });
      await client.dispose();
      const wait = setInterval(() => {
        if (closeCode !== null) {
          clearInterval(wait);
          done({ transcript: { hello, countdown }, close_code: closeCode, path: new URL(url).pathname });
        }
      }, 10);
    })().catch(fail);
  } else {
    const headers = {};
    if (process.env.TOKEN) headers.Authorization = `Bearer ${process.env.TOKEN}`;
    if (process.env.COOKIE) headers.Cookie = `session=${process.env.COOKIE}`;
    const ws = new WebSocket(url, { headers });
    const sent = ['one', 'två', JSON.stringify({ n: 3 }), 'x'.repeat(70000)];
    const got = [];
    ws.on('error', (e) => fail(e.message));
    ws.on('unexpected-response', (req, res) => fail('HTTP ' + res.statusCode));
    ws.on('open', () => {
      for (const s of sent) ws.send(s);
      ws.send(Buffer.from([0, 1, 2, 255]));
    });
    ws.on('message', (data, isBinary) => {
      let m = isBinary ? { binary: [...data] } : data.toString();
      // The demo dashboard also streams its own updates: keep its echoes of what the client sent.
      if (kind === 'demo' && !isBinary) {
        const v = JSON.parse(m);
        if (v.type !== 'echo') return;
        m = v.data;
      }
      got.push(m);
      if (got.length === sent.length + (kind === 'demo' ? 1 : 2)) ws.close(1000, 'bye');
    });
    ws.on('close', (code) => done({ transcript: got, close_code: code, path: new URL(url).pathname }));
  }
}

if (role === 'server') servers();
else if (role === 'client') clients(arg);
else fail('usage: third-party.js server|client <kind> [port|url]');
