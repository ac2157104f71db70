// README screenshots of the web client: builds it, starts a server, has three people chat in Chromium, and saves PNGs of the main screens.
//
// Usage: npx tsx scripts/screenshots.ts [outDir=docs/screenshots]
// (on a shared machine: flock /tmp/parley-machine.lock npx tsx scripts/screenshots.ts).
// Chromium is Debian's /usr/bin/chromium unless CHROMIUM_PATH names another. Emoji are drawn
// with whatever fonts the machine has: without a colour emoji font (fonts-noto-color-emoji)
// the UI's 📎 and 🕓 show as empty boxes, so the scenario only uses ❤️, which DejaVu has.
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { buildWebClient, launchChromium, messageWith, openChat, type Person, removeDir, send, signIn, startChat, watchErrors } from '../test/support/browser.js';
import { startServer } from '../test/support/server.js';
import { until } from '../test/support/wait.js';

const ROOT = resolve(import.meta.dirname, '..');
const OUT_DIR = resolve(ROOT, process.argv[2] ?? 'docs/screenshots');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const DESKTOP = { width: 1200, height: 760 };
const PHONE = { width: 390, height: 844 };
/** The only reaction this machine's fonts draw (see the header). */
const HEART = '❤️';
/** Past this a screenshot is too heavy for a README; reported, not fatal. */
const MAX_BYTES = 150 * 1024;

/** Everything started, stopped newest first (also on Ctrl-C). */
const stops: (() => Promise<unknown>)[] = [];
async function stopAll(): Promise<void> {
  for (const stop of stops.splice(0).reverse()) await stop().catch((err) => console.error('while stopping:', err));
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143)));
}

/** A 320×200 PNG: a sky fading to dusk, a sun and two ridges (a "route" photo), encoded here with zlib. */
function trailPng(width = 320, height = 200): Buffer {
  const ridge = (x: number, base: number, a: number, b: number) => base + 18 * Math.sin(x / a) + 9 * Math.sin(x / b + 1.3);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const t = y / height;
      let rgb = [Math.round(120 + 130 * t), Math.round(180 + 20 * t), Math.round(235 - 90 * t)];
      if ((x - 230) ** 2 + (y - 60) ** 2 < 22 ** 2) rgb = [255, 214, 102];
      if (y > ridge(x, 120, 37, 13)) rgb = [74, 122, 104];
      if (y > ridge(x, 152, 23, 9)) rgb = [36, 82, 62];
      raw.set(rgb, row + 1 + x * 3);
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A person at a desktop browser, on the sign-in screen (not yet registered). */
async function arrive(browser: Browser, url: string, name: string): Promise<Person> {
  const context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, locale: 'en-GB', colorScheme: 'light' });
  stops.push(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  watchErrors(page, errors);
  await page.goto(url);
  await page
    .getByRole('button', { name: 'Create account' })
    .waitFor()
    .catch(async (err: Error) => {
      throw new Error(`${name}'s sign-in screen did not show; the page said: ${await page.locator('body').innerText()}; errors: ${errors.join('; ')}`, { cause: err });
    });
  return { username: `${name}_demo${Math.random().toString(36).slice(2, 5)}`, password: 'correct horse battery', context, page, errors };
}

/** Hovers a message so its actions show, and uses one. */
async function act(p: Person, text: string, action: 'Reply' | 'Edit' | 'React'): Promise<void> {
  const m = messageWith(p, text).first();
  await m.hover();
  await m.getByRole('button', { name: action, exact: true }).click();
  if (action === 'React') await m.getByRole('button', { name: `React ${HEART}` }).click();
}

/** Sends and waits until everyone else has it on screen. */
async function say(from: Person, text: string, others: Person[]): Promise<void> {
  await send(from, text);
  for (const o of others) await messageWith(o, text).first().waitFor();
}

/** Saves what the page shows, with no hover, focus ring or caret left over from the scenario. */
async function shoot(page: Page, name: string): Promise<void> {
  await page.mouse.move(0, 0);
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  await page.evaluate(() => document.fonts.ready);
  const path = join(OUT_DIR, name);
  await page.screenshot({ path, animations: 'disabled', caret: 'hide' });
  const { size } = await stat(path);
  console.log(`${name}: ${(size / 1024).toFixed(0)} KiB${size > MAX_BYTES ? ' (over 150 KiB!)' : ''}`);
}

async function main(): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (set CHROMIUM_PATH, or run scripts/services.sh chromium)`);
  await mkdir(OUT_DIR, { recursive: true });
  console.log('building the web client…');
  const webDir = await buildWebClient();
  stops.push(() => removeDir(webDir));
  const server = await startServer({ env: { WEB_DIR: webDir } });
  stops.push(() => server.dispose());
  const browser = await launchChromium(CHROMIUM);
  stops.push(() => browser.close());

  // Sign-in, with Ana's details typed in.
  const ana = await arrive(browser, server.url, 'ana');
  const ben = await arrive(browser, server.url, 'ben');
  const chloe = await arrive(browser, server.url, 'chloe');
  await ana.page.getByLabel('Username').fill(ana.username);
  await ana.page.getByLabel('Password').fill(ana.password);
  await shoot(ana.page, 'signin.png');
  for (const p of [ana, ben, chloe]) await signIn(p, true);

  // The group, oldest in Ana's list.
  await ana.page.getByRole('button', { name: 'New group' }).click();
  await ana.page.getByLabel('Group name').fill('Weekend trip');
  await ana.page.getByLabel('Members (usernames, comma-separated)').fill(`${ben.username}, ${chloe.username}`);
  await ana.page.getByRole('button', { name: 'Create group' }).click();
  await ana.page.getByRole('region', { name: 'Chat with Weekend trip' }).waitFor();
  await send(ana, "Made us a group for the weekend. Who's driving?");
  for (const p of [ben, chloe]) await openChat(p, 'Weekend trip');
  for (const p of [ben, chloe]) await messageWith(p, 'Made us a group').waitFor();
  await say(ben, 'I can drive. Room for three plus the bags', [ana, chloe]);
  await say(chloe, "I'll bring the tent and the stove", [ana, ben]);
  await act(chloe, 'I can drive', 'Reply');
  await say(chloe, 'Thanks Ben! Snacks for the road are on me', [ana, ben]);
  await say(ana, "Great! I'll sort out the food. Leaving Saturday at 8", [ben, chloe]);
  await act(chloe, "I'll sort out the food", 'React');
  await messageWith(ana, "I'll sort out the food").locator('.reactions').waitFor();
  await messageWith(ana, "I'll sort out the food").locator('[data-tick="read"]').waitFor();

  // Chloe writes to Ana directly; Ana leaves it unread.
  await startChat(chloe, ana.username);
  await say(chloe, 'Are you still coming to the concert on Friday?', []);
  await ana.page.locator(`button[data-chat="${chloe.username}"]`).getByLabel('1 unread').waitFor();

  // Ana and Ben: both ways, an image, a reply, an edit, reactions, read ticks.
  await startChat(ana, ben.username);
  await send(ana, 'Hi Ben! Still on for the hike on Saturday?');
  await openChat(ben, ana.username);
  await messageWith(ben, 'Still on for the hike').waitFor();
  await say(ben, 'Definitely. I found a new route along the ridge', [ana]);
  await ben.page.getByLabel('Attach file').setInputFiles({ name: 'trail-map.png', mimeType: 'image/png', buffer: trailPng() });
  for (const p of [ana, ben]) {
    const img = p.page.locator('img.preview[alt="trail-map.png"]');
    await img.waitFor();
    await until(async () => (await img.evaluate((i: HTMLImageElement) => i.complete && i.naturalWidth)) === 320, `${p.username} sees the image`);
  }
  await act(ana, 'I found a new route', 'Reply');
  await say(ana, 'Looks amazing! How long is it?', [ben]);
  await say(ben, 'About 14 km, five hours with a lunch stop', [ana]);
  await say(ana, "Perfect. I'll pick you up at 8:30", [ben]);
  await act(ana, "I'll pick you up at 8:30", 'Edit');
  await say(ana, "Perfect. I'll pick you up at 8:00", [ben]);
  await messageWith(ana, 'at 8:00').locator('.edited').waitFor();
  await act(ben, 'at 8:00', 'React');
  await act(ana, 'trail-map.png', 'React');
  await messageWith(ana, 'at 8:00').locator('.reactions').waitFor();
  await messageWith(ben, 'trail-map.png').locator('.reactions').waitFor();
  await messageWith(ana, 'at 8:00').locator('[data-tick="read"]').waitFor();
  await messageWith(ana, 'Hi Ben!').locator('[data-tick="read"]').waitFor();
  await shoot(ana.page, 'chats.png');

  await ana.page.getByRole('button', { name: 'Safety number' }).click();
  await ana.page.locator('.qr svg').waitFor();
  await shoot(ana.page, 'safety.png');
  await ana.page.getByRole('button', { name: 'Close Safety number' }).click();

  await openChat(ana, 'Weekend trip');
  await ana.page.getByRole('button', { name: 'Group info' }).click();
  await until(async () => (await ana.page.locator('li[data-member]').count()) === 3, 'three members in Group info');
  await shoot(ana.page, 'group.png');
  await ana.page.getByRole('button', { name: 'Close Group info' }).click();

  await ana.page.getByRole('button', { name: 'Settings' }).click();
  await ana.page.getByRole('list', { name: 'Devices' }).locator('li').first().waitFor();
  await shoot(ana.page, 'settings.png');

  // Chloe on a phone: the group, with names, her reply and the reaction.
  await openChat(chloe, 'Weekend trip');
  await chloe.page.setViewportSize(PHONE);
  await messageWith(chloe, "I'll sort out the food").waitFor();
  await shoot(chloe.page, 'phone.png');

  const errors = [ana, ben, chloe].flatMap((p) => p.errors.map((e) => `${p.username}: ${e}`));
  if (errors.length > 0) console.warn(`browser errors during the run:\n${errors.join('\n')}`);
  console.log(`saved to ${OUT_DIR}`);
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await stopAll();
}
