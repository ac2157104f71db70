// Builds the web client (web/) into dist/web: the page and, at /sw.js, its service worker (Web Push).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: '/',
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
      },
    },
  },
});
