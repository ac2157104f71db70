// A connection holder process: opens its share of idle WebSockets (Parley with signed tokens, or raw), waits for `ready` on each, then holds them.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import type { HolderJob } from './holders.js';
import { benchToken } from './tokens.js';

const job = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as HolderJob;
const sockets: WebSocket[] = [];
let failed = 0;
let firstError = '';

// Every token is signed before the clock starts: a client connects with the token it got at
// login, so signing is not part of connecting (and on this machine it took CPU from the server).
const tokens = job.kind === 'parley' ? await Promise.all(job.devices!.map(([userId, deviceId]) => benchToken(job.secret ?? '', userId, deviceId))) : [];

async function open(i: number): Promise<void> {
  const protocols = job.kind === 'parley' ? ['parley.v1', `bearer.${tokens[i]}`] : [];
  const ws = new WebSocket(job.urls[i % job.urls.length]!, protocols, {
    localAddress: job.sourceIps[i % job.sourceIps.length],
    perMessageDeflate: false,
  });
  await new Promise<void>((resolve) => {
    const fail = (why: string) => {
      failed++;
      firstError ||= why;
      ws.terminate();
      resolve();
    };
    ws.once('message', (d) => {
      if (d.toString().includes('"ready"')) {
        sockets.push(ws);
        resolve();
      } else fail(`first frame: ${d.toString().slice(0, 100)}`);
    });
    ws.once('error', (e) => fail(e.message));
    ws.once('close', (code) => fail(`closed ${code}`));
  });
}

const started = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: job.concurrency }, async () => {
    while (next < job.count) {
      const i = next++;
      await open(i);
      if ((i + 1) % 5000 === 0) process.stderr.write(`[holder ${process.pid}] ${i + 1}/${job.count}\n`);
    }
  }),
);
console.log(JSON.stringify({ held: sockets.length, failed, firstError, seconds: (performance.now() - started) / 1000 }));

/**
 * Exits with every socket reset rather than closed: a port closed by this side stays in
 * TIME_WAIT for a minute, and the kernel's search for a free port to bind() slows down with
 * every one of them (a bench run right after another spent most of its connect time there).
 */
function exit(): void {
  for (const ws of sockets) (ws as unknown as { _socket?: Socket })._socket?.resetAndDestroy();
  process.exit(0);
}
process.on('SIGTERM', exit);
process.stdin.on('end', exit).resume(); // hold until the bench closes our stdin
