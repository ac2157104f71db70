// A fan-out receiver process: holds its share of member sockets and measures when each broadcast message reaches each of them.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import type { HolderJob } from './holders.js';
import { benchToken } from './tokens.js';


/** Microseconds on a clock shared by the processes of one machine (wall-clock origin + monotonic offset). */
export const nowUs = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

const job = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as HolderJob;
/** Latencies (ms) per broadcast message number. */
let byMessage = new Map<number, number[]>();
let received = 0;
let failed = 0;
let firstError = '';
let held = 0;
const ID = /"id":"f-(\d+)-(\d+)"/;

const token = (i: number) => benchToken(job.secret ?? '', ...job.devices![i]!);

async function open(i: number): Promise<void> {
  const protocols = job.kind === 'parley' ? ['parley.v1', `bearer.${await token(i)}`] : [];
  const ws = new WebSocket(job.urls[i % job.urls.length]!, protocols, { localAddress: job.sourceIps[i % job.sourceIps.length], perMessageDeflate: false });
  await new Promise<void>((resolve) => {
    let ready = false;
    ws.on('message', (d) => {
      const text = d.toString();
      if (!ready) {
        if (text.includes('"ready"')) {
          ready = true;
          held++;
          resolve();
        }
        return;
      }
      const m = ID.exec(text);
      if (!m) return;
      const k = Number(m[1]);
      let list = byMessage.get(k);
      if (!list) byMessage.set(k, (list = []));
      list.push((nowUs() - Number(m[2])) / 1000);
      received++;
    });
    const fail = (why: string) => {
      if (ready) return;
      failed++;
      firstError ||= why;
      ws.terminate();
      resolve();
    };
    ws.once('error', (e) => fail(e.message));
    ws.once('close', (code) => fail(`closed ${code}`));
  });
}

const started = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: job.concurrency }, async () => {
    while (next < job.count) await open(next++);
  }),
);
console.log(JSON.stringify({ held, failed, firstError, seconds: (performance.now() - started) / 1000 }));
// Commands on stdin: "count <n>" → how many broadcast frames arrived; "report <n>" → their
// latencies (ms) by message number; "reset" → forget everything measured so far.
createInterface({ input: process.stdin })
  .on('line', (line) => {
    const [cmd, n] = line.trim().split(' ');
    if (cmd === 'count') console.log(JSON.stringify({ count: Number(n), received }));
    else if (cmd === 'report') console.log(JSON.stringify({ report: Number(n), byMessage: Object.fromEntries(byMessage) }));
    else if (cmd === 'reset') {
      byMessage = new Map();
      received = 0;
    }
  })
  .on('close', () => process.exit(0));
