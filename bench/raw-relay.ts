// The ceiling: a bare `ws` relay process (no auth, no parsing, no storage) forwarding each frame from pair i's sender to pair i's recipient.
// Connect to ws://127.0.0.1:<port>/?pair=<i>&role=sender|recipient; every socket gets {"type":"ready"} once registered.
// Prints {"port":<n>} on stdout when listening; exits on SIGTERM/SIGINT or when its parent closes stdin.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';

const recipients = new Map<string, WebSocket>();

const http = createServer((_req, res) => res.writeHead(426, { connection: 'close' }).end());
const wss = new WebSocketServer({ server: http, perMessageDeflate: false, maxPayload: 1 << 20 });

wss.on('connection', (ws, req) => {
  const query = new URL(req.url ?? '/', 'http://relay').searchParams;
  const pair = query.get('pair') ?? '';
  if (query.get('role') === 'recipient') {
    recipients.set(pair, ws);
    ws.on('close', () => {
      if (recipients.get(pair) === ws) recipients.delete(pair);
    });
  } else {
    ws.on('message', (data: RawData, isBinary: boolean) => recipients.get(pair)?.send(data as Buffer, { binary: isBinary }));
  }
  ws.on('error', () => ws.terminate());
  ws.send('{"type":"ready"}');
});

http.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: (http.address() as AddressInfo).port }));
});

const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop).resume();
