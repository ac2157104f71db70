// The load generator process: opens N sender/recipient pairs against one target, runs warm-up, max-throughput and fixed-rate, prints one JSON line.
// Usage (run.ts does this): node --import tsx bench/load.ts '<LoadRequest as JSON>'. Progress goes to stderr; exits when stdin closes (parent gone).
import { parleyEndpoints, rawEndpoints } from './endpoints.js';
import { Pair } from './pairs.js';
import { Probe } from './probe.js';
import type { LoadRequest, LoadResult, ScenarioResult } from './results.js';
import { Driver } from './scenarios.js';

const { target, settings } = JSON.parse(process.argv[2] ?? '{}') as LoadRequest;
const log = (line: string) => process.stderr.write(`[load → ${target.kind} ${target.transport}] ${line}\n`);

process.stdin.on('end', () => process.exit(1)).resume();

function describe(r: ScenarioResult): string {
  const errors = Object.entries(r.errors).map(([code, n]) => `${code}×${n}`);
  return (
    `${r.scenario}: ${r.delivered}/${r.planned} delivered in ${r.seconds.toFixed(2)} s, ${Math.round(r.throughput)} msg/s, ` +
    `p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms${errors.length ? `, errors ${errors.join(' ')}` : ''}` +
    (r.complete ? '' : ' (STALLED)')
  );
}

async function main(): Promise<LoadResult> {
  const started = performance.now();
  const ends = target.kind === 'raw' ? await rawEndpoints(target.urls[0]!, settings) : await parleyEndpoints(target.urls, settings, log, target.transport);
  const probe = await Probe.open(target);
  const driver = new Driver(probe, target.kind === 'parley');
  const pairs = ends.map((e, i) => new Pair(i, e, driver));
  driver.use(pairs);
  await Promise.all(pairs.map((p) => p.ready));
  const setupSeconds = (performance.now() - started) / 1000;
  log(`${pairs.length} pairs connected (setup ${setupSeconds.toFixed(1)} s)`);

  if (settings.warmup > 0) log(`warm-up ${describe(await driver.windowed(settings.warmup, settings.window, false))}`);
  if (target.postgres) log(`waiting for PostgreSQL's statistics to settle before each scenario and after it (about 11 s each)`);
  const max = await driver.windowed(settings.messages, settings.window);
  log(describe(max));
  const rate = await driver.fixedRate(settings.rate, settings.rateSeconds);
  log(describe(rate));
  if (driver.unexpected > 0) log(`${driver.unexpected} unexpected deliveries (duplicates or after a stall)`);
  for (const sample of driver.errorSamples) log(`error frame: ${sample}`);

  for (const p of pairs) p.close();
  await probe.close();
  return { target: target.kind, transport: target.transport, setupSeconds, frameBytes: Buffer.byteLength(ends[0]!.frameHead + 'p0m0' + ends[0]!.frameTail), scenarios: [max, rate] };
}

main().then(
  (result) => process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0)),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
