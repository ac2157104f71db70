// The fan-out ceiling: a bare `ws` server that writes each message from its sender to every other socket.
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const receivers = new Set<WebSocket>();
const server = createServer();
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1 << 20 });
wss.on('connection', (ws, req) => {
  if (req.url === '/send') {
    // The same string to every receiver, as Parley writes one shared frame per gateway.
    ws.on('message', (data) => {
      const text = data.toString();
      for (const r of receivers) r.send(text);
      ws.send('{"type":"sent"}');
    });
    return;
  }
  receivers.add(ws);
  ws.on('close', () => receivers.delete(ws));
  ws.send('{"type":"ready"}');
});
server.listen(0, '0.0.0.0', () => console.log(JSON.stringify({ port: (server.address() as { port: number }).port })));
process.stdin.on('end', () => process.exit(0)).resume();
