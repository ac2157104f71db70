// The abuse bench's attacker process: makes the attacking users, then runs one attack per command, each bounded in time and count.
// Usage (bench/abuse.ts does this): node --import tsx bench/abuse-attacker.ts '<AbuseChildRequest as JSON>'. Prints an AttackerReady
// line once its users exist; then `attack <name> <ms>` on stdin runs that attack for about <ms> and prints `{"attacked":…}`.
// Exits when stdin closes (parent gone).
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { sodiumReady } from '../protocol/bytes.js';
import { loadConfig } from '../platform/config.js';
import type { AbuseChildRequest, AttackerReady, AttackResult } from './abuse-results.js';
import { login, newUser, refusal } from './attack-clients.js';
import { type AttackContext, type AttackOutcome, flood, garbage, presence } from './attacks.js';
import { stalled, logins } from './attacks-http.js';
import { backlog, devices } from './attacks-messages.js';
import type { Attack } from './settings.js';

const request = JSON.parse(process.argv[2] ?? '{}') as AbuseChildRequest;
const log = (line: string) => process.stderr.write(`[attacker] ${line}\n`);
process.stdin.on('end', () => process.exit(1));
process.on('unhandledRejection', (err) => log(`unhandled rejection: ${err instanceof Error ? err.message : String(err)}`));

const RUN: Record<Attack, (ctx: AttackContext) => Promise<AttackOutcome>> = {
  garbage,
  backlog,
  presence,
  devices: (ctx) => devices(ctx, true),
  'devices-ignoring': (ctx) => devices(ctx, false),
  flood,
  stalled,
  logins,
};

async function main(): Promise<void> {
  const { urls } = request;
  const abuse = request.settings.abuse;
  const url = urls[0]!;
  await sodiumReady();
  // The servers run with the defaults, so these are their limits.
  const defaults = loadConfig({});
  const limits = {
    maxPayloadBytes: defaults.WS_MAX_PAYLOAD_BYTES,
    bodyTimeoutMs: defaults.HTTP_BODY_TIMEOUT_MS,
    loginFailuresFree: defaults.LOGIN_FAILURES_FREE,
    ratePerSecond: defaults.WS_RATE_PER_SECOND,
    userRatePerSecond: defaults.WS_USER_RATE_PER_SECOND,
    userBurst: defaults.WS_USER_RATE_BURST,
  };
  const tag = randomBytes(3).toString('hex');
  const wants = (...names: Attack[]) => names.some((n) => abuse.attacks.includes(n));
  const users: AttackContext['users'] = {};
  const notes: string[] = [];
  if (wants('garbage')) users.garbage = await newUser(url, `ag-${tag}`, abuse.garbageConnections);
  if (wants('backlog')) {
    users.backlogSender = await newUser(url, `abs-${tag}`, 1);
    users.backlogReceiver = await newUser(url, `abr-${tag}`, 1);
  }
  if (wants('presence')) users.presence = await newUser(url, `ap-${tag}`, 1);
  if (wants('devices', 'devices-ignoring')) {
    const user = await newUser(url, `ad-${tag}`, defaults.MAX_DEVICES_PER_USER);
    users.devices = user;
    users.peer = await newUser(url, `adp-${tag}`, 1);
    const seventh = await login(url, user.username, user.password).then(
      () => 'ACCEPTED (the cap did not hold)',
      (err: unknown) => refusal(err),
    );
    notes.push(`devices: ${defaults.MAX_DEVICES_PER_USER} devices logged in; a ${defaults.MAX_DEVICES_PER_USER + 1}th login got ${seventh}`);
  }
  if (wants('flood')) users.flood = await newUser(url, `af-${tag}`, 1);
  if (wants('logins')) users.victim = await newUser(url, `av-${tag}`, 0);
  console.log(JSON.stringify({ attackerReady: true, notes } satisfies AttackerReady));

  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, name, duration] = line.trim().split(' ');
    if (cmd !== 'attack' || !name || !(name in RUN)) continue;
    const attack = name as Attack;
    const started = performance.now();
    const cpu0 = process.cpuUsage();
    const outcome = await RUN[attack]({ urls, abuse, users, limits, until: started + Number(duration) }).catch(
      (err: unknown): AttackOutcome => ({ summary: 'the attack itself failed', ok: false, findings: [`attacker error: ${err instanceof Error ? err.message : String(err)}`] }),
    );
    const wall = performance.now() - started;
    const cpu = process.cpuUsage(cpu0);
    const result: AttackResult = { attack, seconds: wall / 1000, cpu: (cpu.user + cpu.system) / 1000 / wall, ...outcome };
    console.log(JSON.stringify({ attacked: attack, result }));
  }
}

main().catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
