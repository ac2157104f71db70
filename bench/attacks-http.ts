// The abuse bench's HTTP attacks: request bodies that stall, and password guessing against one username from many addresses.
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { generateIdentity } from '../protocol/keys.js';
import { DOCUMENTED, median, provenKey, Tally } from './attack-clients.js';
import type { AttackContext, AttackOutcome } from './attacks.js';

/** How much later than HTTP_BODY_TIMEOUT_MS a 408 may come and still count as on time. */
const TIMEOUT_SLACK_MS = 2_000;
/** A stalled connection that has had no answer this long after the timeout is given up. */
const STALL_GIVE_UP_MS = 10_000;
/** Concurrent guesses per source address, and the most guesses in one phase. */
const GUESSERS_PER_ADDRESS = 2;
const MAX_GUESSES = 100_000;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const ms = (n: number) => (Number.isFinite(n) ? `${n.toFixed(0)} ms` : '-');

/**
 * 6. stalled bodies: `stalledConnections` connections each send a JSON request whose
 * content-length promises more than they send, then stall. Each should get 408 once
 * HTTP_BODY_TIMEOUT_MS has passed, and its connection closed.
 */
export async function stalled(ctx: AttackContext): Promise<AttackOutcome> {
  const timeout = ctx.limits.bodyTimeoutMs;
  const partial = '{"username":"stal';
  const answers: { status: number; code: string; ms: number }[] = [];
  const other = new Tally();
  await Promise.all(
    range(ctx.abuse.stalledConnections).map(
      (i) =>
        new Promise<void>((resolve) => {
          const url = new URL(ctx.urls[i % ctx.urls.length]!);
          // Several source addresses, as from several clients.
          const socket = connect({ host: url.hostname, port: Number(url.port), localAddress: `127.0.1.${1 + (i % 50)}` });
          let t0 = performance.now();
          let text = '';
          let finished = false;
          const finish = (how: string) => {
            if (finished) return;
            finished = true;
            clearTimeout(giveUp);
            const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
            const body = text.slice(text.indexOf('\r\n\r\n') + 4);
            const code = /"code":"([a-z_]+)"/.exec(body)?.[1] ?? '-';
            if (status) answers.push({ status: Number(status[1]), code, ms: performance.now() - t0 });
            else other.add(how);
            socket.destroy();
            resolve();
          };
          const giveUp = setTimeout(() => finish('no answer'), timeout + STALL_GIVE_UP_MS);
          socket.on('connect', () => {
            t0 = performance.now();
            socket.write(
              `POST /v1/accounts HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n${partial}`,
            );
          });
          socket.setEncoding('utf8');
          socket.on('data', (d: string) => (text += d));
          socket.on('end', () => finish('closed without an answer'));
          socket.on('close', () => finish('closed without an answer'));
          socket.on('error', (e) => finish(`error ${e.message}`));
        }),
    ),
  );
  const by = new Tally();
  for (const a of answers) by.add(`${a.status} ${a.code}`);
  const onTime = answers.filter((a) => a.status === 408 && a.ms <= timeout + TIMEOUT_SLACK_MS);
  const times = answers.map((a) => a.ms);
  const findings: string[] = [];
  const early = answers.filter((a) => a.ms < timeout - 100);
  if (early.length > 0) findings.push(`${early.length} answered before the timeout: ${[...new Set(early.map((a) => `${a.status} ${a.code}`))].join(', ')}`);
  const codes = new Set(answers.map((a) => a.code).filter((c) => c !== '-' && !DOCUMENTED.errors.has(c)));
  if (codes.size > 0) findings.push(`error code(s) ${[...codes].join(', ')} in the answers: not in docs/protocol.md §9's table`);
  if (other.counts.size > 0) findings.push(`no HTTP answer: ${other}`);
  return {
    summary:
      `${ctx.abuse.stalledConnections} connections sent headers (content-length 4096) and ${partial.length} body bytes, then stalled: ` +
      `${by}; ${onTime.length} got 408 within ${timeout} + ${TIMEOUT_SLACK_MS} ms (p50 ${ms(median(times))}, max ${ms(Math.max(...times))})` +
      (other.counts.size > 0 ? `; without answer: ${other}` : ''),
    ok: onTime.length === ctx.abuse.stalledConnections,
    findings,
  };
}

/** POST `body` as JSON through `agent`; resolves with the status and the error code (0 / the message when the request failed). */
function post(agent: Agent, url: string, path: string, body: unknown): Promise<{ status: number; code: string; message: string; retryAfterMs?: number }> {
  const data = JSON.stringify(body);
  return new Promise((resolve) => {
    const req = request(new URL(path, url), { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let e: { code?: string; message?: string; details?: { retryAfterMs?: number } } = {};
        try {
          e = (JSON.parse(text) as { error?: typeof e }).error ?? {};
        } catch {
          // not JSON: reported by status alone
        }
        resolve({ status: res.statusCode ?? 0, code: e.code ?? '-', message: e.message ?? '', retryAfterMs: e.details?.retryAfterMs });
      });
    });
    req.on('error', (err) => resolve({ status: 0, code: 'request failed', message: err.message }));
    req.end(data);
  });
}

/**
 * 7. logins: wrong passwords for one real username, as fast as the answers come, from
 * `loginAddresses` source addresses (127.0.0.2 …; Linux routes all of 127/8 to loopback), two
 * at a time each. A guess whose password was checked is answered 401; the per-username backoff
 * refuses the others (429 "failed logins"), as does the per-address limit (429 "too many
 * attempts"). Afterwards the owner logs in with the right password once.
 */
export async function logins(ctx: AttackContext): Promise<AttackOutcome> {
  const victim = ctx.users.victim!;
  // Every guess carries a valid proof of key possession, so that only the password decides: a
  // challenge is good for 2 minutes on any gateway and may be reused until then (as an
  // attacker would), so one is signed up front and renewed every minute.
  const identity = generateIdentity();
  let key = await provenKey(ctx.urls[0]!, victim.username, identity);
  const renew = setInterval(() => {
    provenKey(ctx.urls[0]!, victim.username, identity).then((k) => (key = k), () => {});
  }, 60_000);
  const outcomes = new Tally();
  const checkedAt: number[] = [];
  const findings: string[] = [];
  let guesses = 0;
  const agents: Agent[] = [];
  const started = performance.now();
  await Promise.all(
    range(ctx.abuse.loginAddresses).flatMap((a) => {
      const agent = new Agent({ keepAlive: true, localAddress: `127.0.0.${2 + a}`, maxSockets: GUESSERS_PER_ADDRESS });
      agents.push(agent);
      const url = ctx.urls[a % ctx.urls.length]!;
      return range(GUESSERS_PER_ADDRESS).map(async () => {
        while (performance.now() < ctx.until && guesses < MAX_GUESSES) {
          guesses++;
          const r = await post(agent, url, '/v1/sessions', { username: victim.username, password: `guess-${guesses}-${Math.random()}`, device: { name: 'guess', ...key } });
          if (r.status === 401) {
            outcomes.add('401 checked');
            checkedAt.push(performance.now() - started);
          } else if (r.status === 429) outcomes.add(r.message.includes('failed logins') ? '429 backoff' : '429 per-address');
          else {
            outcomes.add(`${r.status} ${r.code}`);
            if (r.status === 0 || r.status >= 500 || r.status === 201) findings.push(`a guess got ${r.status} ${r.code} ${r.message}`.slice(0, 200));
            else if (r.code !== '-' && !DOCUMENTED.errors.has(r.code)) findings.push(`a guess got ${r.status} ${r.code}, a code docs/protocol.md §9 does not list`);
          }
        }
      });
    }),
  );
  clearInterval(renew);
  for (const a of agents) a.destroy();
  const agent = new Agent({ localAddress: '127.0.0.250' });
  const ownerKey = await provenKey(ctx.urls[0]!, victim.username, identity);
  const owner = await post(agent, ctx.urls[0]!, '/v1/sessions', { username: victim.username, password: victim.password, device: { name: 'owner', ...ownerKey } });
  agent.destroy();
  const checked = outcomes.get('401 checked');
  // What the backoff allows in the phase: the free failures, then one per wait of 1 s, 2 s, 4 s …
  const seconds = (performance.now() - started) / 1000;
  let allowed = ctx.limits.loginFailuresFree;
  for (let wait = 1, t = 0; (t += wait) <= seconds; wait *= 2) allowed++;
  return {
    summary:
      `${guesses.toLocaleString('en-US')} guesses from ${ctx.abuse.loginAddresses} addresses in ${seconds.toFixed(1)} s: ${outcomes}; ` +
      `passwords checked at ${checkedAt.map((t) => (t / 1000).toFixed(1)).join(', ')} s (the backoff allows ${allowed}); ` +
      `the owner's right password right after: ${owner.status} ${owner.code}${owner.retryAfterMs === undefined ? '' : ` (retry after ${(owner.retryAfterMs / 1000).toFixed(1)} s)`}`,
    ok: checked <= allowed && checked > 0,
    findings: [
      ...(checked > allowed
        ? [
            `${checked} passwords checked where LOGIN_FAILURES_FREE=${ctx.limits.loginFailuresFree} and the waits allow ${allowed}: turns are counted per failure count ` +
              `(accounts/login-backoff.ts), and each failure that lands while other guesses are still being hashed opens free − count new turns, ` +
              `so concurrent guesses get up to ${(ctx.limits.loginFailuresFree * (ctx.limits.loginFailuresFree + 1)) / 2} checks before the first wait`,
          ]
        : []),
      ...new Set(findings),
    ].slice(0, 6),
  };
}
