// The ceiling for idle connections: a bare `ws` server that greets each socket and holds it; GET /mem reports its memory.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const http = createServer((req, res) => {
  if (req.url !== '/mem') return void res.writeHead(404).end();
  const m = process.memoryUsage();
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, sockets: wss.clients.size }));
});
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
wss.on('connection', (ws) => ws.send('{"type":"ready"}'));
http.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (http.address() as { port: number }).port })));
process.stdin.on('end', () => process.exit(0)).resume(); // exits with the bench
