// Scanning a data directory for leaked secrets: every file's bytes, and the forms a leaked string could take.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Every file under `dir`, as one buffer each. */
export async function readAll(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(await readFile(join(e.parentPath, e.name)));
  }
  return out;
}

/** The forms a leaked string could take: raw, hex (both cases), base64 and base64url (at each alignment). */
export function forms(s: string | Buffer): Buffer[] {
  const b = Buffer.from(s);
  const out = [b, Buffer.from(b.toString('hex')), Buffer.from(b.toString('hex').toUpperCase())];
  for (let shift = 0; shift < 3; shift++) {
    // The inner part of the base64 of s, independent of what precedes it in a larger blob.
    const inner = Buffer.concat([Buffer.alloc(shift), b]).toString('base64').slice(Math.ceil((shift * 4) / 3) + 2, -4);
    out.push(Buffer.from(inner), Buffer.from(inner.replace(/\+/g, '-').replace(/\//g, '_')));
  }
  return out;
}
