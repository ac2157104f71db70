// The files scenario (`npm run bench -- --files`): upload and download throughput through a real server, beside raw disk copy speed.
//
// In one run, on the same disk (the server's DATA_DIR and the copy both live under the OS temp
// directory):
//   raw copy   BENCH_FILES [5] × BENCH_FILE_MIB [50] MiB copied file to file with streams, then
//              fsync: the ceiling for a server that must read, write and fsync the same bytes.
//   upload     the same count and size of distinct (random) ciphertexts, each POSTed from memory
//              over 127.0.0.1 with its SHA-256; Parley hashes, writes, fsyncs and records it.
//   download   each of them fetched back in full; the client only counts the bytes.
//   SDK        BENCH_SDK_FILES [2] files of the same size through the SDK, sender to recipient:
//              sendFile (encrypt + hash + upload + share + message) and file.download()
//              (download + hash + decrypt): what an app sees.
// The server is `node --import tsx server.ts` on PGlite and the disk blob store. Its RSS (from
// /metrics) is read before and after, to show that transfers stream rather than buffer.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createClient, type Message } from '../client-sdk/index.js';
import { Child, parleyEnv } from './children.js';
import type { Settings } from './settings.js';

type Defer = (fn: () => Promise<unknown>) => void;

const MiB = 1024 * 1024;

interface Row {
  what: string;
  files: number;
  seconds: number;
}

async function rssMiB(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^process_resident_memory_bytes (\S+)$/m.exec(text)?.[1] ?? NaN) / MiB;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

export async function benchFiles(settings: Settings, defer: Defer): Promise<void> {
  const { files: count, fileMiB, sdkFiles } = settings;
  const size = fileMiB * MiB;
  const dir = await mkdtemp(join(tmpdir(), 'parley-bench-files-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  console.log(`config: ${count} × ${fileMiB} MiB raw and over HTTP, ${sdkFiles} × ${fileMiB} MiB through the SDK; temp dir ${dir}`);

  const payloads = Array.from({ length: count }, () => randomBytes(size));
  const hashes = payloads.map((p) => createHash('sha256').update(p).digest('hex'));

  // Raw disk copy of the same bytes: write the sources first (not timed), then copy + fsync.
  for (const [i, p] of payloads.entries()) await writeFile(join(dir, `src-${i}`), p);
  const rawSeconds = await timed(async () => {
    for (let i = 0; i < count; i++) {
      const target = join(dir, `copy-${i}`);
      await pipeline(createReadStream(join(dir, `src-${i}`), { highWaterMark: 256 * 1024 }), createWriteStream(target));
      const fh = await open(target, 'r+');
      await fh.sync();
      await fh.close();
    }
  });
  for (let i = 0; i < count; i++) {
    await rm(join(dir, `src-${i}`));
    await rm(join(dir, `copy-${i}`));
  }

  const dataDir = join(dir, 'parley');
  const server = new Child('parley', 'server.ts', [], {
    env: { ...parleyEnv(dataDir), FILE_MAX_BYTES: String(Math.max(size * 2, 100 * MiB)) },
  });
  defer(() => server.stop());
  const port = await server.waitFor('"listening" log line', (l) => (l.includes('"msg":"listening"') ? (JSON.parse(l).port as number) : undefined), 60_000);
  const url = `http://127.0.0.1:${port}`;

  const name = (p: string) => `${p}_${randomBytes(4).toString('hex')}`;
  const alice = createClient({ url, username: name('alice'), password: 'bench-password' });
  const bob = createClient({ url, username: name('bob'), password: 'bench-password' });
  defer(() => alice.close());
  defer(() => bob.close());
  await alice.register();
  await bob.register();
  const rssBefore = await rssMiB(url);
  const auth = { authorization: `Bearer ${alice.accessToken}` };

  const ids: string[] = [];
  const uploadSeconds = await timed(async () => {
    for (const [i, p] of payloads.entries()) {
      const res = await fetch(`${url}/v1/files`, {
        method: 'POST',
        body: p as Uint8Array<ArrayBuffer>,
        headers: { ...auth, 'content-type': 'application/octet-stream', 'x-content-sha256': hashes[i]! },
      });
      if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
      ids.push(((await res.json()) as { id: string }).id);
    }
  });
  const downloadSeconds = await timed(async () => {
    for (const id of ids) {
      const res = await fetch(`${url}/v1/files/${id}`, { headers: auth });
      let n = 0;
      const reader = res.body!.getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) n += r.value.length;
      if (res.status !== 200 || n !== size) throw new Error(`download failed: ${res.status}, ${n} bytes`);
    }
  });
  const rssAfterHttp = await rssMiB(url);

  // Through the SDK: encrypt + upload + share + message, then download + decrypt on the other side.
  await alice.connect();
  await bob.connect();
  const received: Message[] = [];
  bob.on('message', (m) => received.push(m));
  const plains = payloads.slice(0, sdkFiles);
  const sendSeconds = await timed(async () => {
    for (const p of plains) await alice.sendFile(bob.userId, p, { name: 'bench.bin' });
  });
  const deadline = Date.now() + 30_000;
  while (received.length < plains.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  if (received.length < plains.length) throw new Error('the SDK messages did not arrive');
  let intact = true;
  const receiveSeconds = await timed(async () => {
    for (const [i, m] of received.entries()) intact &&= Buffer.from(await m.file!.download()).equals(plains[i]!);
  });
  if (!intact) throw new Error('a file came back different');
  const rssAfter = await rssMiB(url);
  await server.stop();

  const rows: Row[] = [
    { what: 'raw disk copy (stream + fsync)', files: count, seconds: rawSeconds },
    { what: 'Parley upload (HTTP, hash + write + fsync)', files: count, seconds: uploadSeconds },
    { what: 'Parley download (HTTP)', files: count, seconds: downloadSeconds },
    { what: 'SDK sendFile (encrypt + upload + message)', files: sdkFiles, seconds: sendSeconds },
    { what: 'SDK file.download (download + decrypt)', files: sdkFiles, seconds: receiveSeconds },
  ];
  const rawRate = (count * fileMiB) / rawSeconds;
  console.log('');
  console.log('| path | files × MiB | seconds | MiB/s | vs raw copy |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) {
    const rate = (r.files * fileMiB) / r.seconds;
    console.log(`| ${r.what} | ${r.files} × ${fileMiB} | ${r.seconds.toFixed(2)} | ${rate.toFixed(0)} | ${(rate / rawRate).toFixed(2)}× |`);
  }
  console.log('');
  console.log(
    `parley server RSS: ${rssBefore.toFixed(0)} MiB before, ${rssAfterHttp.toFixed(0)} MiB after the HTTP transfers, ` +
      `${rssAfter.toFixed(0)} MiB after the SDK ones (files of ${fileMiB} MiB: transfers stream, they are not buffered)`,
  );
}
