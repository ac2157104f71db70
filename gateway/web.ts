// The web client at `/`: the files `npm run build` wrote (web/ built by Vite), with a strict Content-Security-Policy.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/**
 * No inline script or style, nothing from another origin, no plugins, no framing. Scripts may
 * compile WebAssembly (libsodium); images and media may be `blob:` URLs (decrypted files);
 * the service worker and the connections (REST, WebSocket, Socket.IO) are same-origin.
 */
export const WEB_CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "worker-src 'self'",
  "manifest-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');

/** dist/web beside the built server (dist/gateway/web.js), or beside the sources when run by tsx. */
export function defaultWebDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const built = resolve(here, '..', 'web');
  return existsSync(join(built, 'index.html')) ? built : resolve(here, '..', 'dist', 'web');
}

/**
 * Serves `dir` at `/` when it holds a built client (index.html); returns whether it does.
 * Hashed assets are cached for a year; index.html and the service worker are revalidated on
 * every load, so a deploy reaches every open client at its next reload.
 */
export async function registerWeb(http: FastifyInstance, dir: string): Promise<boolean> {
  if (!dir || !existsSync(join(dir, 'index.html'))) return false;
  await http.register(fastifyStatic, {
    root: resolve(dir),
    prefix: '/',
    wildcard: false,
    index: ['index.html'],
    // The build wrote .br and .gz beside each text asset (web/vite.config.ts): sent to browsers that accept them.
    preCompressed: true,
    cacheControl: false,
    setHeaders(res, path) {
      res.header('content-security-policy', WEB_CSP);
      res.header('x-content-type-options', 'nosniff');
      res.header('referrer-policy', 'no-referrer');
      res.header('cross-origin-opener-policy', 'same-origin');
      res.header('cache-control', path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  return true;
}
