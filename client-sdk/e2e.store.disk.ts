// The on-disk key store for Node: one JSON file (mode 0600), replaced atomically on every write. Not for browsers.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { JsonValue, KeyChange, KeySection, KeyStore } from './e2e.store.js';

type Sections = Partial<Record<KeySection, Record<string, JsonValue>>>;

/**
 * Keeps the whole state in memory and rewrites `path` on each `write`: to a temporary file
 * beside it, flushed to disk, then renamed over the old one, so a crash leaves either the old
 * or the new file, never a torn one. One process per file. Meant for one device's state (a few
 * MB at most); an app with very many sessions would put the same interface over SQLite.
 * @example createClient({ url, username, password, keyStore: diskKeyStore('./alice.keys.json') })
 */
export function diskKeyStore(path: string): KeyStore {
  let loaded: Promise<Sections> | null = null;
  let queue: Promise<unknown> = Promise.resolve();
  const load = () =>
    (loaded ??= readFile(path, 'utf8').then<Sections, Sections>(
      (text) => (JSON.parse(text) as { v: number; sections: Sections }).sections,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return {} as Sections;
        throw err;
      },
    ));

  const persist = async (sections: Sections) => {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(JSON.stringify({ v: 1, sections }));
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  };

  return {
    get: async (section, id) => {
      const v = (await load())[section]?.[id];
      return v === undefined ? undefined : (structuredClone(v) as JsonValue);
    },
    ids: async (section) => Object.keys((await load())[section] ?? {}),
    write: (changes: KeyChange[]) => {
      const run = queue.then(async () => {
        const current = await load();
        // Apply to a copy: if the file cannot be written, memory keeps agreeing with the disk.
        const next: Sections = { ...current };
        for (const c of changes) {
          const s = { ...(next[c.section] ?? {}) };
          if (c.value === undefined) delete s[c.id];
          else s[c.id] = structuredClone(c.value);
          next[c.section] = s;
        }
        await persist(next);
        loaded = Promise.resolve(next);
      });
      queue = run.catch(() => undefined);
      return run;
    },
  };
}
