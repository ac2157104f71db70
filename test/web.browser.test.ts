// The web client in Debian's Chromium (headless, driven by Playwright) against a real server: what people do, as they do it.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildWebClient, launchChromium, messageWith, newPerson, openChat, type Person, removeDir, send, shownTexts, startChat } from './support/browser.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

const chromiumPath = inject('chromiumPath');

describe.skipIf(chromiumPath === null)('the web client in Chromium', () => {
  let webDir: string;
  let server: ServerProcess;
  let browser: Browser;
  const people: Person[] = [];
  const person = async (prefix: string, options?: Parameters<typeof newPerson>[3]) => {
    const p = await newPerson(browser, server.url, prefix, options);
    people.push(p);
    return p;
  };

  beforeAll(async () => {
    webDir = await buildWebClient();
    server = await startServer({ env: { WEB_DIR: webDir } });
    browser = await launchChromium(chromiumPath!);
  });

  afterAll(async () => {
    for (const p of people) await p.context.close().catch(() => undefined);
    await browser?.close();
    await server?.dispose();
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
});
