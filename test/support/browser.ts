// Browser tests' parts: the web client built by Vite, Debian's Chromium driven by Playwright, and people using the client as a person would (by labels and roles).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { promisify } from 'node:util';
import { uniqueName } from './wait.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** Builds web/ into a fresh directory (the server's WEB_DIR), as `npm run build` does, in a process of its own; remove it with `removeDir`. */
export async function buildWebClient(): Promise<string> {
  const outDir = await mkdtemp(join(tmpdir(), 'parley-web-'));
  const vite = join(ROOT, 'node_modules/vite/bin/vite.js');
  await promisify(execFile)(process.execPath, [vite, 'build', '--config', 'web/vite.config.ts', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'], { cwd: ROOT, timeout: 120_000 });
  return outDir;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** The flags this machine needs (../shared/RECIPES.md): root, no GPU, and no calls to Google's hosts. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

/** One person at one browser: a context of their own (cookies, IndexedDB, service worker). */
export interface Person {
  username: string;
  password: string;
  context: BrowserContext;
  page: Page;
  /** Browser console errors and page errors seen so far (a CSP violation shows up here). */
  errors: string[];
}

export async function newPerson(
  browser: Browser,
  url: string,
  prefix: string,
  options: { register?: boolean; init?: (c: BrowserContext) => Promise<void> } = {},
): Promise<Person> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  await options.init?.(context);
  const page = await context.newPage();
  const errors: string[] = [];
  watchErrors(page, errors);
  const person: Person = { username: uniqueName(prefix), password: 'correct horse battery', context, page, errors };
  await page.goto(url);
  if (options.register !== false) await signIn(person, true);
  return person;
}

export function watchErrors(page: Page, errors: string[]): void {
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // A failed request is logged by the browser without its URL: the response below names it.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`http ${r.status()}: ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
}

export async function signIn(p: Person, register: boolean): Promise<void> {
  await p.page.getByLabel('Username').fill(p.username);
  await p.page.getByLabel('Password').fill(p.password);
  await p.page.getByRole('button', { name: register ? 'Create account' : 'Sign in' }).click();
  await p.page.getByRole('navigation', { name: 'Chats' }).waitFor();
}

/** Opens (or starts) the direct chat with `username`. */
export async function startChat(p: Person, username: string): Promise<void> {
  await p.page.getByLabel('Start a chat with').fill(username);
  await p.page.getByRole('button', { name: 'Start chat' }).click();
  await p.page.getByRole('region', { name: `Chat with ${username}` }).waitFor();
}

export async function openChat(p: Person, title: string): Promise<void> {
  await p.page.locator(`button[data-chat="${title}"]`).click();
  await p.page.getByRole('region', { name: `Chat with ${title}` }).waitFor();
}

export async function send(p: Person, text: string): Promise<void> {
  await p.page.getByLabel('Message', { exact: true }).fill(text);
  await p.page.getByLabel('Message', { exact: true }).press('Enter');
}

/** The texts of the open chat's messages, in order. */
export async function shownTexts(p: Person): Promise<string[]> {
  return p.page.locator('ol[aria-label="Messages"] > li.msg:not(.system) .text').allTextContents();
}

/** The open chat's message with this text. */
export function messageWith(p: Person, text: string) {
  return p.page.locator('ol[aria-label="Messages"] > li.msg', { hasText: text });
}
