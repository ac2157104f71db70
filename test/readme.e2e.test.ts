// End-to-end: the README's SDK snippets, taken from README.md as written, run against a real server twice, then with the groups and files parts.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, startServer } from './support/server.js';

const ROOT = resolve(import.meta.dirname, '..');
const run = promisify(execFile);

/** The body of the first fenced block (with the given language, '' for none) after `marker` in the README. */
function blockAfter(readme: string, marker: string, lang: string): string {
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`README.md has no "${marker}"`);
  const open = readme.indexOf(`\n\`\`\`${lang}\n`, at);
  const start = open + `\n\`\`\`${lang}\n`.length;
  return readme.slice(start, readme.indexOf('\n```\n', start) + 1);
}

describe('README snippets, as a newcomer runs them', () => {
  let server: ServerProcess;
  let dir: string;
  let quickstart: string;
  let groups: string;
  let files: string;
  let printed: string[];

  beforeAll(async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    quickstart = blockAfter(readme, 'Talk to it with the client SDK', 'ts');
    groups = blockAfter(readme, 'Groups (this continues `quickstart.ts`', 'ts');
    files = blockAfter(readme, '### Files', 'ts');
    printed = blockAfter(readme, 'It prints', '').trim().split('\n');
    server = await startServer();
    dir = await mkdtemp(join(tmpdir(), 'parley-readme-'));
    // As in the repository's folder: an ES module (top-level await).
    await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  });
  afterAll(async () => {
    await server?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /**
   * Runs a program the way the README says (`npx tsx quickstart.ts` in the repository), from a
   * scratch folder that keeps its key files between runs: only the SDK's import path and the
   * server's URL are changed. Resolves with its output lines; rejects if it fails or hangs.
   */
  async function runAsNewcomer(program: string): Promise<string[]> {
    const source = program
      .replaceAll("'./client-sdk/", `'${ROOT}/client-sdk/`)
      .replaceAll("'http://localhost:8080'", `'${server.url}'`);
    expect(source).toContain(server.url);
    const file = join(dir, 'quickstart.ts');
    await writeFile(file, source);
    const { stdout } = await run(process.execPath, [join(ROOT, 'node_modules/.bin/tsx'), file], { cwd: dir, timeout: 30_000 });
    return stdout.trim().split('\n');
  }

  it('the quick start prints what the README says, and exits', async () => {
    expect(printed).toEqual(['alice sent seq 1', 'bob got "hello" (seq 1)', 'alice: bob has read up to seq 1']);
    const lines = await runAsNewcomer(quickstart);
    expect([...lines].sort()).toEqual([...printed].sort());
  });

  it('a second run logs in as the same devices (a new device would be refused as not approved) and sends the next seq', async () => {
    const lines = await runAsNewcomer(quickstart);
    expect([...lines].sort()).toEqual(printed.map((l) => l.replace('seq 1', 'seq 2')).sort());
  });

  it('the groups and files parts run as a continuation of the quick start, before its close calls', async () => {
    const at = quickstart.indexOf('await alice.close();');
    expect(at).toBeGreaterThan(0);
    const lines = await runAsNewcomer(quickstart.slice(0, at) + groups + files + quickstart.slice(at));
    expect(lines).toEqual(expect.arrayContaining(['alice sent seq 3', 'bob got "hello all" (seq 2)', "alice's groups: 1", 'bob downloaded "a picture of a cat"']));
    expect(lines.some((l) => l.startsWith('bob sees member_removed'))).toBe(true);
  });
});
