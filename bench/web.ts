// `npm run bench -- --web`: the web client's size, its time to an interactive chat list, and send → recipient's screen in Chromium beside the SDK alone.
//
// One Parley process (`node --import tsx server.ts`, PGlite, rate limits raised) serves a fresh
// build of web/ (WEB_DIR); Debian's Chromium runs headless through Playwright, every page in one
// browser on this machine.
//   size      every file of the build: raw, gzip (level 9) and brotli (quality 11) bytes; and the
//             first page load's share (index.html and the JS/CSS it references; not sw.js), with
//             what a cold visit actually fetched (the server sends the files uncompressed).
//   load      `page.goto(url)` until the chat list shows BENCH_WEB_CHATS buttons, BENCH_WEB_LOADS
//             times, for one signed-in user whose browser context is kept (session and IndexedDB
//             in place: what a returning person waits for). Each chat is a direct conversation
//             an SDK peer wrote in. Once more, cold: a new context until the sign-in form shows.
//             Timed from just before goto (Node's Date.now()) to a MutationObserver's Date.now()
//             in the page the moment the DOM holds them (before paint).
//   messages  two people in two contexts, the recipient with the chat open; BENCH_WEB_MESSAGES
//             messages one at a time (after 10 unmeasured): from the sender's Enter (typed in the
//             page, its clock) to the recipient's MutationObserver seeing the message's li (its
//             clock; the clocks are comparable, performance.timeOrigin + performance.now(), in one
//             browser). Then the SDK alone: two Node clients (memory stores) against the same
//             server, the same count, sendText → the recipient's 'message' event. CPU per message
//             from /proc over exactly the measured messages: the server process, and the clients
//             (Chromium's whole process tree; this Node process for the SDK clients).
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createClient, type ParleyClient } from '../client-sdk/index.js';
import { buildWebClient, launchChromium, newPerson, openChat, type Person, removeDir, startChat } from '../test/support/browser.js';
import { uniqueName } from '../test/support/wait.js';
import { mapLimit } from './accounts.js';
import { Child, jsonLine, parleyEnv } from './children.js';
import { processCpuSeconds, processInfo, treeCpuSeconds } from './cpu.js';
import { service } from './gateways.js';
import type { Settings } from './settings.js';
import { summarize, type LatencySummary } from './stats.js';
import { buildSizes, firstLoadFiles, sizeReport, table } from './web-size.js';

type Defer = (fn: () => Promise<unknown>) => void;

/** Unmeasured messages before each messages run (JIT, sessions, IndexedDB warm). */
const WARMUP = 10;
const CHATS = 'nav[aria-label="Chats"] button[data-chat]';
const SIGN_IN = 'form[aria-label="Sign in"]';

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');

// ---- load ----

/**
 * Added to a context: in each page it opens, a MutationObserver notes Date.now() the first
 * time `count` elements match `selector` (Node's clock and the page's are the same wall clock).
 */
async function watchShown(context: BrowserContext, selector: string, count: number): Promise<void> {
  await context.addInitScript(
    ({ selector, count }) => {
      const w = window as unknown as Record<string, unknown>;
      const observer = new MutationObserver(() => {
        if (w.__benchShownAt !== undefined || document.querySelectorAll(selector).length < count) return;
        w.__benchShownAt = Date.now();
        observer.disconnect();
      });
      observer.observe(document, { childList: true, subtree: true });
    },
    { selector, count },
  );
}

/** goto → shown, Node's clock to the page's (ms); and the page's own DOMContentLoaded (since its navigation start). */
async function timedVisit(page: Page, url: string): Promise<{ ms: number; domContentLoaded: number }> {
  const started = Date.now();
  await page.goto(url, { waitUntil: 'commit' });
  await page.waitForFunction(() => (window as unknown as Record<string, unknown>).__benchShownAt !== undefined, undefined, { polling: 10, timeout: 30_000 });
  const r = await page.evaluate(() => {
    const w = window as unknown as Record<string, number>;
    const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined;
    return { at: w.__benchShownAt!, domContentLoaded: nav?.domContentLoadedEventEnd ?? Number.NaN };
  });
  return { ms: r.at - started, domContentLoaded: r.domContentLoaded };
}

// ---- messages ----

interface Run {
  /** Latencies in send order (ms). */
  samples: number[];
  latency: LatencySummary;
  serverUs: number | null;
  clientUs: number | null;
}

/** The Chromium processes this Node process launched (their trees hold every renderer, GPU and network process). */
function chromiumRoots(): number[] {
  try {
    return readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .filter((pid) => {
        const info = processInfo(pid);
        return info !== null && info.ppid === process.pid && /chrom/i.test(info.comm);
      });
  } catch {
    return [];
  }
}

function cpuDelta(before: number | null, after: number | null, n: number): number | null {
  return before === null || after === null ? null : ((after - before) * 1e6) / n;
}

/** Sum of the trees' CPU seconds, null if any is unknown. */
function treesCpu(roots: number[]): number | null {
  if (roots.length === 0) return null;
  const all = treeCpuSeconds(roots);
  return all.every((x) => x !== null) ? all.reduce<number>((a, x) => a + x!, 0) : null;
}

/** The recipient's page tells Node, through `__benchSeen`, when each message's li first shows (page clock); `wait(text)` resolves with that time. */
async function watchMessages(page: Page, prefix: string): Promise<{ wait: (text: string) => Promise<number> }> {
  const waiting = new Map<string, (t: number) => void>();
  const early = new Map<string, number>();
  await page.exposeFunction('__benchSeen', (text: string, t: number) => {
    const w = waiting.get(text);
    if (w) w(t);
    else early.set(text, t); // reported before Node started waiting
  });
  await page.evaluate((prefix) => {
    const list = document.querySelector('ol[aria-label="Messages"]')!;
    const seen = new Set<string>();
    const notify = (window as unknown as { __benchSeen: (text: string, t: number) => void }).__benchSeen;
    new MutationObserver(() => {
      const t = performance.timeOrigin + performance.now();
      const items = list.querySelectorAll(':scope > li.msg');
      // One message at a time: only the newest few can be new.
      for (let i = items.length - 1; i >= Math.max(0, items.length - 3); i--) {
        const text = items[i]!.querySelector('.text')?.textContent ?? '';
        if (text.startsWith(prefix) && !seen.has(text)) {
          seen.add(text);
          void notify(text, t);
        }
      }
    }).observe(list, { childList: true, subtree: true, characterData: true });
  }, prefix);
  return {
    wait: (text) =>
      new Promise<number>((resolve) => {
        const t = early.get(text);
        if (t !== undefined) resolve(t);
        else waiting.set(text, resolve);
      }),
  };
}

function within<T>(p: Promise<T>, msTimeout: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${msTimeout} ms`)), msTimeout)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Types `text` into the sender's composer and presses Enter (a keydown, as the composer listens for); the page's clock at the press. */
function pressSend(page: Page, text: string): Promise<number> {
  return page.evaluate((text) => {
    const box = document.querySelector<HTMLTextAreaElement>('form[aria-label="Write a message"] textarea')!;
    box.value = text;
    const t = performance.timeOrigin + performance.now();
    box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
    return t;
  }, text);
}

async function browserMessages(browser: Browser, url: string, count: number, serverPid: number, people: Person[]): Promise<Run> {
  const alice = await newPerson(browser, url, 'alice');
  const bob = await newPerson(browser, url, 'bob');
  people.push(alice, bob);
  await startChat(alice, bob.username);
  const prefix = `web-${process.pid}-`;
  const hello = `${prefix}hello`;
  await pressSend(alice.page, hello);
  await bob.page.locator(`button[data-chat="${alice.username}"]`).waitFor();
  await openChat(bob, alice.username);
  await bob.page.locator('ol[aria-label="Messages"] > li.msg', { hasText: hello }).waitFor();
  const seen = await watchMessages(bob.page, prefix);
  const one = async (i: number) => {
    const text = `${prefix}${i}`;
    const shown = seen.wait(text);
    const sent = await pressSend(alice.page, text);
    return (await within(shown, 15_000, `message ${i} on the recipient's screen`)) - sent;
  };
  for (let i = 0; i < WARMUP; i++) await one(-1 - i);
  const roots = chromiumRoots();
  const [server0, client0] = [processCpuSeconds([serverPid]), treesCpu(roots)];
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await one(i));
  const [server1, client1] = [processCpuSeconds([serverPid]), treesCpu(roots)];
  return { samples, latency: summarize(samples), serverUs: cpuDelta(server0, server1, count), clientUs: cpuDelta(client0, client1, count) };
}

async function sdkClient(url: string, prefix: string): Promise<ParleyClient> {
  const username = uniqueName(prefix);
  const client = createClient({ url, username, password: `bench-password-${username}` });
  await client.register();
  await client.connect();
  return client;
}

async function sdkMessages(url: string, count: number, serverPid: number): Promise<Run> {
  const [a, b] = [await sdkClient(url, 'sdk_a'), await sdkClient(url, 'sdk_b')];
  try {
    const waiting = new Map<string, (t: number) => void>();
    b.on('message', (m) => waiting.get(m.text)?.(performance.now()));
    const one = async (i: number) => {
      const text = `sdk-${i}`;
      const arrived = new Promise<number>((resolve) => waiting.set(text, resolve));
      const sent = performance.now();
      await a.sendText(b.userId, text);
      return (await within(arrived, 15_000, `SDK message ${i}`)) - sent;
    };
    for (let i = 0; i < WARMUP; i++) await one(-1 - i);
    const cpu = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    };
    const [server0, client0] = [processCpuSeconds([serverPid]), cpu()];
    const samples: number[] = [];
    for (let i = 0; i < count; i++) samples.push(await one(i));
    const [server1, client1] = [processCpuSeconds([serverPid]), cpu()];
    return { samples, latency: summarize(samples), serverUs: cpuDelta(server0, server1, count), clientUs: cpuDelta(client0, client1, count) };
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

// ---- the run ----

async function startParley(webDir: string, defer: Defer): Promise<{ url: string; server: Child }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-bench-web-'));
  defer(() => rm(dataDir, { recursive: true, force: true }));
  const server = new Child('parley-web', 'server.ts', [], {
    env: {
      ...parleyEnv(dataDir),
      WEB_DIR: webDir,
    },
  });
  defer(() => server.stop());
  const port = await server.waitFor('"listening" log line', (l) => (l.includes('"msg":"listening"') ? (jsonLine(l)?.port as number) : undefined), 60_000);
  return { url: `http://127.0.0.1:${port}`, server };
}

/** `npm run bench -- --web`: the client's size, page loads, and send → screen beside the SDK (see the top of this file). */
export async function benchWeb(settings: Settings, defer: Defer): Promise<void> {
  const { loads, chats, messages } = settings.web;
  const buildStarted = performance.now();
  const webDir = await buildWebClient();
  defer(() => removeDir(webDir));
  const buildSeconds = (performance.now() - buildStarted) / 1000;
  const sizes = await buildSizes(webDir);
  const first = firstLoadFiles(await readFile(join(webDir, 'index.html'), 'utf8'));

  const { url, server } = await startParley(webDir, defer);
  const browser = await launchChromium(service('chromium'));
  defer(() => browser.close());
  const people: Person[] = [];
  defer(async () => Promise.all(people.map((p) => p.context.close().catch(() => undefined))));
  console.log(
    `config: Parley (one process, PGlite) serving a fresh build of web/ (vite, ${buildSeconds.toFixed(1)} s); Chromium ${browser.version()} headless over 127.0.0.1; ` +
      `${loads} signed-in loads with ${chats} chats; ${messages} messages one at a time (after ${WARMUP} warm-up)`,
  );

  // Cold: a new context, nothing stored; what it fetched.
  const cold = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  await watchShown(cold, SIGN_IN, 1);
  const coldPage = await cold.newPage();
  const fetching: Promise<{ path: string; bytes: number }>[] = [];
  coldPage.on('requestfinished', (r) => {
    const u = new URL(r.url());
    if (u.origin === url) fetching.push(r.sizes().then((s) => ({ path: u.pathname, bytes: s.responseBodySize })));
  });
  const coldVisit = await timedVisit(coldPage, url);
  await coldPage.waitForLoadState('networkidle');
  const fetched = await Promise.all(fetching);
  await cold.close();

  // Signed in, `chats` direct chats, each opened by an SDK peer's message.
  const reader = await newPerson(browser, url, 'reader', { init: (c) => watchShown(c, CHATS, chats) });
  people.push(reader);
  await mapLimit(
    Array.from({ length: chats }, (_, i) => i),
    4,
    async (i) => {
      const peer = await sdkClient(url, `peer${i}`);
      try {
        await peer.sendText(await peer.findUser(reader.username), `hello from peer ${i}`);
      } finally {
        await peer.close();
      }
    },
  );
  await reader.page.waitForFunction(({ selector, chats }) => document.querySelectorAll(selector).length === chats, { selector: CHATS, chats }, { timeout: 30_000 });
  const visits = [];
  for (let i = 0; i < loads; i++) {
    visits.push(await timedVisit(reader.page, url));
    const shown = await reader.page.locator(CHATS).count();
    if (shown !== chats) throw new Error(`load ${i}: ${shown} chats listed, expected ${chats}`);
    await reader.page.waitForTimeout(250); // let the page settle (names, presence) before leaving it
  }
  await reader.context.close();

  const web = await browserMessages(browser, url, messages, server.pid, people);
  for (const p of people) await p.context.close().catch(() => undefined);
  const sdk = await sdkMessages(url, messages, server.pid);
  const errors = people.flatMap((p) => p.errors);

  console.log('');
  for (const l of sizeReport(sizes, first, fetched.sort((a, b) => a.path.localeCompare(b.path)))) console.log(l);
  console.log('');
  const reloads = summarize(visits.map((v) => v.ms));
  const dcl = summarize(visits.map((v) => v.domContentLoaded));
  const loadRow = (name: string, s: LatencySummary, min: number) => [name, String(s.count), ms(s.p50), ms(s.p99), ms(min), ms(s.max)];
  console.log(
    table(['page load: goto → shown (ms)', 'runs', 'p50', 'p99', 'min', 'max'], [
      loadRow('first visit, cold: sign-in form', summarize([coldVisit.ms]), coldVisit.ms),
      loadRow(`signed-in reload: ${chats} chats listed`, reloads, Math.min(...visits.map((v) => v.ms))),
      loadRow('  of which to DOMContentLoaded', dcl, Math.min(...visits.map((v) => v.domContentLoaded))),
    ]),
  );
  console.log(
    'a reload keeps the context (cookies, IndexedDB, HTTP cache: /assets/ are immutable, index.html is revalidated); after DOMContentLoaded the client ' +
      'reads its sealed credentials, logs in (password), connects and fetches the inbox before the list renders.',
  );
  console.log('');
  const us = (n: number | null) => (n === null ? '-' : int(n));
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : '-');
  console.log(
    table(['send → recipient (ms)', 'msgs', 'p50', 'p99', 'max', 'server µs/msg', 'client µs/msg'], [
      ['web client (Chromium, two pages)', int(web.latency.count), ms(web.latency.p50), ms(web.latency.p99), ms(web.latency.max), us(web.serverUs), us(web.clientUs)],
      ['SDK only (Node, two clients)', int(sdk.latency.count), ms(sdk.latency.p50), ms(sdk.latency.p99), ms(sdk.latency.max), us(sdk.serverUs), us(sdk.clientUs)],
      [
        'web / SDK',
        '',
        ratio(web.latency.p50, sdk.latency.p50),
        ratio(web.latency.p99, sdk.latency.p99),
        ratio(web.latency.max, sdk.latency.max),
        web.serverUs !== null && sdk.serverUs !== null ? ratio(web.serverUs, sdk.serverUs) : '-',
        web.clientUs !== null && sdk.clientUs !== null ? ratio(web.clientUs, sdk.clientUs) : '-',
      ],
    ]),
  );
  console.log(
    'µs/msg: CPU time (user + system, from /proc) over the measured messages: server = the Parley process; client = every Chromium process ' +
      '(both pages: crypto, IndexedDB, rendering) or this Node process (both SDK clients, memory stores). Both web pages have the chat open, so each ' +
      'marks it read as a message arrives or is sent (a read receipt through the server); the SDK clients only acknowledge.',
  );
  if (messages >= 20) {
    // The open chat grows by one message per send; a cost that grows with it shows here.
    const quarter = Math.floor(messages / 4);
    const p50 = (r: Run, from: number) => ms(summarize(r.samples.slice(from, from + quarter)).p50);
    console.log(
      `p50 over messages 1–${quarter} / ${messages - quarter + 1}–${messages}: web ${p50(web, 0)} / ${p50(web, messages - quarter)} ms, ` +
        `SDK ${p50(sdk, 0)} / ${p50(sdk, messages - quarter)} ms (both web pages show the whole chat, which grows by one message per send)`,
    );
  }
  console.log(`browser errors: ${errors.length === 0 ? 'none' : errors.slice(0, 5).join(' | ')}`);
  const problems = [...server.stdout.filter((l) => Number(jsonLine(l)?.level ?? 0) >= 40), ...server.stderr];
  if (problems.length > 0) {
    console.log(`the server logged ${problems.length} warning/error line(s); the first:`);
    for (const p of problems.slice(0, 3)) console.log(`  ${p.slice(0, 300)}`);
  }
}

