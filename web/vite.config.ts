// Builds the web client (web/) into dist/web: the page and, at /sw.js, its service worker (Web Push).
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/**
 * Writes a .br and a .gz beside each text asset, which the server sends to browsers that accept
 * them (@fastify/static's preCompressed): compressed once at build time, at the best levels.
 */
function precompress(): Plugin {
  let outDir = '';
  return {
    name: 'parley-precompress',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir; // --outDir included
    },
    async closeBundle() {
      for (const e of await readdir(outDir, { withFileTypes: true, recursive: true })) {
        if (!e.isFile() || !/\.(js|css|html|webmanifest|svg)$/.test(e.name)) continue;
        const file = join(e.parentPath, e.name);
        const raw = await readFile(file);
        if (raw.length < 1024) continue;
        await writeFile(`${file}.br`, brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
        await writeFile(`${file}.gz`, gzipSync(raw, { level: 9 }));
      }
    },
  };
}

export default defineConfig({
  root: here('.'),
  base: '/',
  plugins: [precompress()],
  // Preact's JSX (the automatic runtime), as tsconfig.json says for the type check.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  // The SDK loads `ws` only where there is no WebSocket (Node); a browser never does.
  resolve: { alias: { ws: here('src/no-ws.ts') } },
  build: {
    outDir: here('../dist/web'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // No inline anything (the Content-Security-Policy allows none): assets are files.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    // libsodium (WebAssembly inside) is most of the bundle: one chunk of ~650 kB, ~220 kB compressed.
    chunkSizeWarningLimit: 800,
    rollupOptions: {
      input: { main: here('index.html'), sw: here('src/sw.ts') },
      output: {
        // The service worker keeps one URL (its scope is the origin); everything else is hashed.
        entryFileNames: (chunk) => (chunk.name === 'sw' ? 'sw.js' : 'assets/[name]-[hash].js'),
        // What the page and the worker share, in chunks named for what they hold: libsodium, and the SDK.
        codeSplitting: {
          groups: [
            { name: 'libsodium', test: /libsodium/ },
            { name: 'sdk', test: /client-sdk|protocol|web\/src\/(device|vault)/ },
          ],
        },
      },
    },
  },
});
