// The on-disk key store for Node: one JSON file (mode 0600), replaced atomically on every write. Not for browsers.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { platform } from 'node:process';
import { dirname } from 'node:path';
import type { JsonValue, KeyChange, KeySection, KeyStore } from './e2e.store.js';

type Sections = Partial<Record<KeySection, Record<string, JsonValue>>>;

/**
 * Makes a rename in `dir` durable: fsync of the directory itself, without which a crash (a
 * power cut, not just a process exit) may bring back the old directory entry, i.e. the old
 * key store. Windows cannot open a directory for fsync (and NTFS journals the rename), so
 * there this is a no-op.
 */
async function syncDir(dir: string): Promise<void> {
  if (platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Keeps the whole state in memory and rewrites `path` on each `write`: to a temporary file
 * beside it, fsynced, renamed over the old one, then the directory fsynced, so a crash leaves
 * either the old or the new file, never a torn one, and a write that resolved stays written.
 * That matters beyond losing data: a store rolled back to an older state would reuse ratchet
 * and one-time prekeys it already used. One process per file. Meant for one device's state
 * (a few MB at most); an app with very many sessions would put the same interface over SQLite.
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
      try {
        await file.writeFile(JSON.stringify({ v: 1, sections }));
        await file.sync(); // the bytes are on disk before the name points at them
      } finally {
        await file.close();
      }
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // The rename is on disk too. Should this fail, the write rejects and memory keeps the old
    // state; the next write starts from it, so what the store says stays what callers were told.
    await syncDir(dirname(path));
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
