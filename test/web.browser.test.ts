// The web client in Debian's Chromium (headless, driven by Playwright) against a real server: what people do, as they do it.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildWebClient, CHROMIUM_ARGS, launchChromium, messageWith, newPerson, openChat, type Person, removeDir, send, shownTexts, startChat } from './support/browser.js';
import { startNoUpgradeProxy } from './support/no-upgrade-proxy.js';
import { startProxy } from './support/proxy.js';
import { type PushService, startPushService } from './support/push-service.js';
import { type ServerProcess, startServer } from './support/server.js';
import { forms, readAll } from './support/scan.js';
import { until, uniqueName } from './support/wait.js';

const ADMIN_TOKEN = `admin-${uniqueName('token')}-${uniqueName('operator')}`;

/** An 8×8 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR4nGO4YGCAFTEMLQkA2ntMAeuWKpoAAAAASUVORK5CYII=', 'base64');

const chromiumPath = inject('chromiumPath');

describe.skipIf(chromiumPath === null)('the web client in Chromium', () => {
  let webDir: string;
  let server: ServerProcess;
  let browser: Browser;
  let pushService: PushService;
  const people: Person[] = [];
  const person = async (prefix: string, options?: Parameters<typeof newPerson>[3]) => {
    const p = await newPerson(browser, server.url, prefix, options);
    people.push(p);
    return p;
  };

  beforeAll(async () => {
    webDir = await buildWebClient();
    pushService = await startPushService();
    server = await startServer({
      env: {
        WEB_DIR: webDir,
        ADMIN_TOKEN,
        // Web Push to the local push service (a real RFC 8030/8291 endpoint), soon after a message.
        PUSH_DRIVER: 'webpush',
        PUSH_ENDPOINT_HOSTS: new URL(pushService.origin).hostname,
        PUSH_ALLOW_HTTP: 'true',
        PUSH_DELAY_MS: '300',
        PUSH_POLL_MS: '50',
      },
    });
    browser = await launchChromium(chromiumPath!);
  });

  afterAll(async () => {
    for (const p of people) await p.context.close().catch(() => undefined);
    await browser?.close();
    await server?.dispose();
    await pushService?.close();
    if (webDir) await removeDir(webDir);
  });

  it('two people register, find each other, chat both ways, and the ticks move to read', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await startChat(alice, bob.username);
    await send(alice, 'hello bob');
    await messageWith(alice, 'hello bob').locator('[data-tick]').waitFor();
    // Bob's list shows the chat with one unread message; opening it reads it.
    const item = bob.page.locator(`button[data-chat="${alice.username}"]`);
    await item.getByLabel('1 unread').waitFor();
    await openChat(bob, alice.username);
    expect(await shownTexts(bob)).toEqual(['hello bob']);
    await messageWith(alice, 'hello bob').locator('[data-tick="read"]').waitFor();
    await send(bob, 'hi alice');
    await messageWith(alice, 'hi alice').waitFor();
    expect(await shownTexts(alice)).toEqual(['hello bob', 'hi alice']);
    await messageWith(bob, 'hi alice').locator('[data-tick="read"]').waitFor();
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it('a group of three: a member removed mid-conversation gets nothing after, the others carry on', async () => {
    const [alice, bob, carol] = [await person('alice'), await person('bob'), await person('carol')];
    await alice.page.getByRole('button', { name: 'New group' }).click();
    await alice.page.getByLabel('Group name').fill('Trip');
    await alice.page.getByLabel('Members (usernames, comma-separated)').fill(`${bob.username}, ${carol.username}`);
    await alice.page.getByRole('button', { name: 'Create group' }).click();
    await alice.page.getByRole('region', { name: 'Chat with Trip' }).waitFor();
    await send(alice, 'first to all');
    for (const p of [bob, carol]) {
      await openChat(p, 'Trip');
      await messageWith(p, 'first to all').waitFor();
    }
    // Both members read it: the group's aggregate tick is read.
    await messageWith(alice, 'first to all').locator('[data-tick="read"]').waitFor();
    await send(carol, 'carol here');
    await messageWith(bob, 'carol here').waitFor();
    await messageWith(alice, 'carol here').waitFor();

    await alice.page.getByRole('button', { name: 'Group info' }).click();
    await alice.page.getByRole('button', { name: `Remove ${carol.username}` }).click();
    await alice.page.locator(`li[data-member="${carol.username}"]`).waitFor({ state: 'detached' });
    await alice.page.getByRole('button', { name: 'Close Group info' }).click();
    await send(alice, 'after carol left');
    await messageWith(bob, 'after carol left').waitFor();
    await bob.page.getByText(`removed ${carol.username}`).waitFor();
    // Carol's client dropped the group; what followed never reached her screen.
    await carol.page.locator('button[data-chat="Trip"]').waitFor({ state: 'detached' });
    expect(await carol.page.getByText('after carol left').count()).toBe(0);
    await send(bob, 'bob still here');
    await messageWith(alice, 'bob still here').waitFor();
    expect([...alice.errors, ...bob.errors, ...carol.errors]).toEqual([]);
  });

  it('an image is sent, checked and decrypted by the SDK, and previewed', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await startChat(alice, bob.username);
    await alice.page.getByLabel('Attach file').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: PNG });
    const mine = alice.page.locator('img.preview[alt="dot.png"]');
    await mine.waitFor();
    await openChat(bob, alice.username);
    const preview = bob.page.locator('img.preview[alt="dot.png"]');
    await preview.waitFor();
    await until(async () => (await preview.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)) === 8, 'the image decoded at 8 px');
    expect(await preview.getAttribute('src')).toMatch(/^blob:/);
  });

  it('a reload keeps the session (no sign-in) and the history (from IndexedDB), on the same device', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await startChat(alice, bob.username);
    for (const t of ['one', 'two', 'three']) await send(alice, t);
    await openChat(bob, alice.username);
    await messageWith(bob, 'three').waitFor();
    await bob.page.reload();
    await bob.page.getByRole('navigation', { name: 'Chats' }).waitFor();
    expect(await bob.page.getByRole('button', { name: 'Create account' }).count()).toBe(0);
    await openChat(bob, alice.username);
    await messageWith(bob, 'three').waitFor();
    expect(await shownTexts(bob)).toEqual(['one', 'two', 'three']);
    await send(bob, 'after reload');
    await messageWith(alice, 'after reload').waitFor();
    await bob.page.getByRole('button', { name: 'Settings' }).click();
    await bob.page.getByRole('list', { name: 'Devices' }).locator('li').first().waitFor();
    expect(await bob.page.getByRole('list', { name: 'Devices' }).locator('li').count()).toBe(1);
  });

  it('the network cut and restored: the state shows it, the outbox goes out, and nothing is lost', async () => {
    // Bob reaches the server through a loopback proxy that the test cuts.
    const proxy = await startProxy(server.port);
    const alice = await person('alice');
    const bob = await newPerson(browser, proxy.url, 'bob');
    people.push(bob);
    await startChat(alice, bob.username);
    await send(alice, 'before the cut');
    await openChat(bob, alice.username);
    await messageWith(bob, 'before the cut').waitFor();
    await bob.context.setOffline(true); // no new connections
    proxy.cut(); // and the open one is gone
    await bob.page.locator('[data-connection="reconnecting"]').waitFor();
    for (const t of ['away 1', 'away 2', 'away 3']) await send(alice, t);
    await send(bob, 'written offline');
    await messageWith(bob, 'written offline').locator('[data-tick="pending"]').waitFor();
    await bob.context.setOffline(false);
    await bob.page.locator('[data-connection="online"]').waitFor();
    await messageWith(bob, 'away 3').waitFor();
    await messageWith(alice, 'written offline').waitFor();
    await messageWith(bob, 'written offline').locator('[data-tick="read"]').waitFor();
    expect(await shownTexts(bob)).toEqual(['before the cut', 'away 1', 'away 2', 'away 3', 'written offline']);
    expect(await shownTexts(alice)).toEqual(['before the cut', 'away 1', 'away 2', 'away 3', 'written offline']);
    await proxy.close();
  });

  it('with WebSockets blocked, the client falls back to Socket.IO long-polling and chats both ways', async () => {
    // Bob's network has a proxy that refuses every WebSocket upgrade (as some corporate proxies do).
    const proxy = await startNoUpgradeProxy(server.port);
    const alice = await person('alice');
    const bob = await newPerson(browser, proxy.url, 'bob');
    people.push(bob);
    await bob.page.locator('[data-connection="online"][data-transport="socket.io:polling"]').waitFor();
    await startChat(alice, bob.username);
    await send(alice, 'through polling?');
    await openChat(bob, alice.username);
    await messageWith(bob, 'through polling?').waitFor();
    await send(bob, 'yes, polling');
    await messageWith(alice, 'yes, polling').waitFor();
    expect(await bob.page.locator('[data-connection]').getAttribute('data-transport')).toBe('socket.io:polling');
    expect(proxy.upgradesRefused).toBeGreaterThan(0);
    await proxy.close();
  });

  it('a push reaches the service worker, which decrypts it on the device and shows the message', async () => {
    const alice = await person('alice');
    const subscription = pushService.subscribe();
    // Headless Chromium has no browser push service here: the page's subscription is the local
    // push service's (same keys and endpoint a browser would hand over), and the test carries
    // what that service received to the service worker, as a browser's push service would.
    const dave = await person('dave', {
      init: async (context) => {
        await context.grantPermissions(['notifications'], { origin: server.url });
        await context.addInitScript((sub) => {
          const fake = { endpoint: sub.endpoint, toJSON: () => sub, unsubscribe: async () => true };
          PushManager.prototype.subscribe = async () => fake as unknown as PushSubscription;
          PushManager.prototype.getSubscription = async () => fake as unknown as PushSubscription;
        }, subscription);
      },
    });
    await dave.page.getByRole('button', { name: 'Settings' }).click();
    await dave.page.getByRole('button', { name: 'Enable notifications' }).click();
    await dave.page.getByText('Notifications are on for this browser.').waitFor();
    // Dave leaves the page: no window of the app is open, so the worker opens the push itself.
    const cdp = await dave.context.newCDPSession(dave.page);
    await cdp.send('ServiceWorker.enable');
    const registrations: { registrationId: string; scopeURL: string }[] = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    await dave.page.goto('about:blank');
    await startChat(alice, dave.username);
    await send(alice, 'a secret for the worker');
    const [push] = await pushService.waitFor(1, subscription.endpoint);
    expect(push!.payload).not.toContain('a secret for the worker');
    await until(() => registrations.some((r) => r.scopeURL.startsWith(server.url)), 'the service worker registration');
    const registrationId = registrations.find((r) => r.scopeURL.startsWith(server.url))!.registrationId;
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url, registrationId, data: push!.payload });
    await dave.page.goto(server.url);
    const shown = async () =>
      dave.page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, body: n.body })));
    await until(async () => (await shown()).length > 0, 'a notification');
    expect(await shown()).toEqual([{ title: alice.username, body: 'a secret for the worker' }]);
    // The page then shows the message the worker opened (it is in the device's history).
    await openChat(dave, alice.username);
    await messageWith(dave, 'a secret for the worker').waitFor();
  });

  it('message actions reach the other side (reply, react, edit, delete for everyone), with typing and presence shown', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    for (const p of [alice, bob]) p.page.on('dialog', (d) => void d.accept());
    await startChat(alice, bob.username);
    await send(alice, 'original');
    await openChat(bob, alice.username);
    await messageWith(bob, 'original').waitFor();
    const aliceHeader = alice.page.getByRole('region', { name: `Chat with ${bob.username}` }).locator('.status');
    await until(async () => (await aliceHeader.textContent()) === 'online', 'bob shown online');
    await bob.page.getByLabel('Message', { exact: true }).fill('typing away');
    await until(async () => (await aliceHeader.textContent()) === 'typing…', 'bob shown typing');
    await bob.page.getByLabel('Message', { exact: true }).fill('');

    const original = messageWith(bob, 'original');
    await original.hover();
    await original.getByRole('button', { name: 'Reply' }).click();
    await send(bob, 'a reply');
    const reply = messageWith(alice, 'a reply');
    await reply.waitFor();
    expect(await reply.locator('blockquote').textContent()).toContain('original');

    await reply.hover();
    await reply.getByRole('button', { name: 'React', exact: true }).click();
    await reply.getByRole('button', { name: 'React 👍' }).click();
    await messageWith(bob, 'a reply').getByRole('list', { name: 'Reactions' }).getByText('👍 1').waitFor();

    const mine = messageWith(alice, 'original').first();
    await mine.hover();
    await mine.getByRole('button', { name: 'Edit' }).click();
    await alice.page.getByLabel('Message', { exact: true }).fill('original, edited');
    await alice.page.getByLabel('Message', { exact: true }).press('Enter');
    const edited = bob.page.locator('ol[aria-label="Messages"] > li.msg', { hasText: 'original, edited' }).first();
    await edited.locator('.edited').waitFor();

    const toDelete = messageWith(alice, 'original, edited').first();
    await toDelete.hover();
    await toDelete.getByRole('button', { name: 'Delete' }).click();
    await bob.page.getByText('This message was deleted.').waitFor();
    expect(await bob.page.getByText('original, edited').count()).toBe(0);
    // Bob had the chat open: the actions (their own seqs) were read too; the server's count says so after a reload.
    await bob.page.reload();
    await bob.page.locator(`button[data-chat="${alice.username}"]`).waitFor();
    expect(await bob.page.locator(`button[data-chat="${alice.username}"] .badge`).count()).toBe(0);
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it('safety numbers match on both sides, with a QR code and "mark verified"; block and unblock; a report; change the password; delete the account', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    for (const p of [alice, bob]) p.page.on('dialog', (d) => void (d.type() === 'prompt' ? d.accept('unwanted messages') : d.accept()));
    await startChat(alice, bob.username);
    await send(alice, 'hi');
    await openChat(bob, alice.username);
    await messageWith(bob, 'hi').waitFor();
    const digits = async (p: Person) => {
      await p.page.getByRole('button', { name: 'Safety number' }).click();
      const text = await p.page.getByLabel('Safety number digits').textContent();
      expect(await p.page.getByRole('img', { name: 'QR code of the safety number' }).locator('svg').count()).toBe(1);
      return text!;
    };
    const seenByAlice = await digits(alice);
    expect(seenByAlice.replace(/ /g, '')).toMatch(/^\d{60}$/);
    expect(await digits(bob)).toBe(seenByAlice);
    await alice.page.getByRole('button', { name: 'Mark verified' }).click();
    await alice.page.getByRole('button', { name: 'Verified ✓' }).waitFor();
    await alice.page.getByRole('button', { name: 'Close Safety number' }).click();

    // Blocked, bob's message never reaches alice; unblocked, the next one does.
    await alice.page.getByRole('button', { name: 'Block' }).click();
    await alice.page.getByRole('button', { name: 'Unblock' }).waitFor();
    await bob.page.getByRole('button', { name: 'Close Safety number' }).click();
    await send(bob, 'while blocked');
    await messageWith(bob, 'while blocked').locator('[data-tick="sent"]').waitFor();
    await alice.page.getByRole('button', { name: 'Unblock' }).click();
    await alice.page.getByRole('button', { name: 'Block' }).waitFor();
    await send(bob, 'after unblock');
    await messageWith(alice, 'after unblock').waitFor();
    expect(await shownTexts(alice)).toEqual(['hi', 'after unblock']);

    // A report attaches bob's last messages that alice's screen shows; the operator reads them.
    await alice.page.getByRole('button', { name: 'Report' }).click();
    const operator = (path: string) => fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }).then((r) => r.json());
    let report: { id: string; reason: string } | undefined;
    await until(async () => {
      const { reports } = (await operator('/v1/admin/reports?limit=100')) as { reports: { id: string; userId: string; reason: string }[] };
      report = reports.find((r) => r.reason === 'unwanted messages');
      return report !== undefined;
    }, 'the report');
    const filed = (await operator(`/v1/admin/reports/${report!.id}`)) as { messages: { text: string }[] };
    expect(filed.messages.map((m) => m.text)).toEqual(['after unblock']);

    // A new password: the session carries on, and a reload signs in with it.
    await alice.page.getByRole('button', { name: 'Settings' }).click();
    await alice.page.getByLabel('Current password').fill(alice.password);
    await alice.page.getByLabel('New password').fill('a brand new password');
    await alice.page.getByRole('button', { name: 'Change password' }).click();
    await alice.page.getByText('Password changed').waitFor();
    await alice.page.reload();
    await alice.page.locator(`button[data-chat="${bob.username}"]`).waitFor();

    await alice.page.getByRole('button', { name: 'Settings' }).click();
    await alice.page.getByLabel('Password to delete the account').fill('a brand new password');
    await alice.page.getByRole('button', { name: 'Delete account' }).click();
    await alice.page.getByRole('button', { name: 'Create account' }).waitFor();
    await bob.page.getByLabel('Start a chat with').fill(alice.username);
    await bob.page.getByRole('button', { name: 'Start chat' }).click();
    await bob.page.getByText('No such user.').waitFor();
  });

  it('works with the keyboard alone on a phone-sized screen, every control labelled', async () => {
    const bob = await person('bob');
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    const username = `kim_${Math.random().toString(36).slice(2, 8)}`;
    people.push({ username, password: 'correct horse battery', context, page, errors: [] });
    await page.goto(server.url);
    await page.getByLabel('Username').waitFor();
    const focused = () => page.evaluate(() => document.activeElement?.getAttribute('name') ?? document.activeElement?.textContent ?? '');
    expect(await focused()).toBe('username'); // focus starts where typing does
    await page.keyboard.type(username);
    await page.keyboard.press('Tab');
    await page.keyboard.type('correct horse battery');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Create account');
    await page.keyboard.press('Enter');
    await page.getByRole('navigation', { name: 'Chats' }).waitFor();
    for (let i = 0; i < 10 && (await focused()) !== 'peer'; i++) await page.keyboard.press('Tab');
    expect(await focused()).toBe('peer');
    await page.keyboard.type(bob.username);
    await page.keyboard.press('Enter');
    await page.getByRole('region', { name: `Chat with ${bob.username}` }).waitFor();
    // On a phone the open chat takes the screen; the composer has the focus.
    expect(await page.getByRole('navigation', { name: 'Chats' }).isVisible()).toBe(false);
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('TEXTAREA');
    await page.keyboard.type('sent by keyboard');
    await page.keyboard.press('Enter');
    await openChat(bob, username);
    await messageWith(bob, 'sent by keyboard').waitFor();
    const unlabelled = await page.evaluate(() =>
      Array.from(document.querySelectorAll<HTMLElement>('button, input, textarea, select'))
        .filter((el) => {
          const named = el.getAttribute('aria-label') || (el instanceof HTMLButtonElement && el.textContent?.trim());
          const labelled = 'labels' in el && (el as HTMLInputElement).labels && (el as HTMLInputElement).labels!.length > 0;
          return !named && !labelled;
        })
        .map((el) => el.outerHTML.slice(0, 80)),
    );
    expect(unlabelled).toEqual([]);
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true); // nothing wider than the phone
    await page.getByRole('button', { name: 'Back to chats' }).click();
    await page.getByRole('navigation', { name: 'Chats' }).waitFor();
  });

  it('the browser profile on disk holds no message text, file name or password: IndexedDB holds them sealed', async () => {
    const alice = await person('alice');
    // Bob's browser keeps its profile on disk, as a person's does; the test reads every file of it.
    const profile = await mkdtemp(join(tmpdir(), 'parley-profile-'));
    const context = await chromium.launchPersistentContext(profile, { executablePath: chromiumPath!, headless: true, args: CHROMIUM_ARGS });
    const page = context.pages()[0] ?? (await context.newPage());
    const bob: Person = { username: uniqueName('bob'), password: `pw-${uniqueName('canary')}`, context, page, errors: [] };
    people.push(bob);
    await page.goto(server.url);
    await page.getByLabel('Username').fill(bob.username);
    await page.getByLabel('Password').fill(bob.password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('navigation', { name: 'Chats' }).waitFor();
    const canaries = [uniqueName('canaryin'), uniqueName('canaryout')];
    const fileName = `${uniqueName('canaryfile')}.png`;
    await startChat(alice, bob.username);
    await send(alice, `${canaries[0]} to bob`);
    await openChat(bob, alice.username);
    await messageWith(bob, canaries[0]!).waitFor();
    await send(bob, `${canaries[1]} to alice`);
    await page.getByLabel('Attach file').setInputFiles({ name: fileName, mimeType: 'image/png', buffer: PNG });
    await messageWith(alice, canaries[1]!).waitFor();
    await alice.page.locator(`img.preview[alt="${fileName}"]`).waitFor();
    await context.close(); // everything written out
    const files = await readAll(profile);
    // The scan finds what is kept in plain: the databases are named after the username.
    expect(files.some((f) => f.includes(Buffer.from(bob.username)) || f.includes(Buffer.from(bob.username, 'utf16le')))).toBe(true);
    const found = [...canaries, fileName, bob.password].filter((c) => {
      const needles = [...forms(c), Buffer.from(c, 'utf16le')];
      return files.some((f) => needles.some((n) => f.includes(n)));
    });
    expect(found).toEqual([]);
    await removeDir(profile);
  });

  it('a second tab waits while the first drives the device (one client per device), then takes over when it closes', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    const second = await alice.context.newPage();
    await second.goto(server.url);
    await second.getByText('Parley is open in another tab or window').waitFor();
    expect(await second.getByRole('navigation', { name: 'Chats' }).count()).toBe(0);
    await alice.page.close();
    const there: Person = { ...alice, page: second };
    await second.getByRole('navigation', { name: 'Chats' }).waitFor();
    await startChat(there, bob.username);
    await send(there, 'from the second tab');
    await openChat(bob, alice.username);
    await messageWith(bob, 'from the second tab').waitFor();
    await send(bob, 'seen');
    await messageWith(there, 'seen').waitFor();
  });
});
