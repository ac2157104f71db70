// The web client's build, file by file: raw, gzip (level 9) and brotli (quality 11) sizes, the first page load's share, and the markdown tables bench/web.ts prints.
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const int = (n: number) => Math.round(n).toLocaleString('en-US');

/** A markdown table, columns after the first right-aligned and padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

export interface FileSize {
  path: string;
  raw: number;
  gzip: number;
  brotli: number;
}

export async function buildSizes(dir: string): Promise<FileSize[]> {
  const out: FileSize[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (/\.(br|gz)$/.test(e.name)) continue; // the build's precompressed copies: their sizes are the columns
    if (!e.isFile()) continue;
    const full = join(e.parentPath, e.name);
    const bytes = await readFile(full);
    out.push({
      path: relative(dir, full),
      raw: bytes.length,
      gzip: gzipSync(bytes, { level: 9 }).length,
      brotli: brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }).length,
    });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** index.html and the scripts, module preloads and stylesheets it references (what the first load fetches before running anything). */
export function firstLoadFiles(indexHtml: string): string[] {
  const refs = [...indexHtml.matchAll(/(?:src|href)="\/([^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
  return ['index.html', ...refs];
}

export function sizeReport(files: FileSize[], first: string[], fetched: { path: string; bytes: number }[]): string[] {
  const sum = (list: FileSize[]) => list.reduce((a, f) => ({ raw: a.raw + f.raw, gzip: a.gzip + f.gzip, brotli: a.brotli + f.brotli }), { raw: 0, gzip: 0, brotli: 0 });
  const row = (name: string, s: { raw: number; gzip: number; brotli: number }) => [name, int(s.raw), int(s.gzip), int(s.brotli)];
  const firstFiles = files.filter((f) => first.includes(f.path));
  const lines = [
    table(['web client build (bytes)', 'raw', 'gzip -9', 'brotli q11'], [
      ...files.map((f) => row(first.includes(f.path) ? `${f.path} *` : f.path, f)),
      row(`total (${files.length} files)`, sum(files)),
      row(`first page load * (${firstFiles.length} files)`, sum(firstFiles)),
    ]),
    '* index.html and the JS/CSS it references (script, modulepreload, stylesheet); sw.js and the manifest come after.',
  ];
  const total = fetched.reduce((a, f) => a + f.bytes, 0);
  lines.push(`a cold visit fetched ${fetched.length} files, ${int(total)} bytes of bodies as sent (brotli: the build's precompressed copies): ${fetched.map((f) => f.path).join(', ')}`);
  return lines;
}
