// Origins and CORS through a real server: an allowed browser origin can register, log in and connect on every transport; any other is refused.
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerFrame, SOCKETIO_EVENT, SOCKETIO_PATH } from '../protocol/frames.js';
import { loginDevice, rawAccount, upgradeStatus } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { uniqueName, until } from './support/wait.js';

const APP = 'http://app.example.test:5173';
const EVIL = 'https://evil.example.test';

/** How a Socket.IO handshake with this Origin ends: 'connected', or the connect_error's message. */
function ioOutcome(url: string, origin: string, token: string, transports: ('polling' | 'websocket')[]): Promise<string> {
  return new Promise((resolve) => {
    const socket = io(url, { path: SOCKETIO_PATH, auth: { token }, transports, extraHeaders: { origin }, reconnection: false, forceNew: true });
    const frames: ServerFrame[] = [];
    socket.on(SOCKETIO_EVENT, (t: string) => {
      frames.push(JSON.parse(t) as ServerFrame);
      if (frames.some((f) => f.type === 'caught_up')) {
        socket.close();
        resolve('connected');
      }
    });
    socket.on('connect_error', (err) => {
      socket.close();
      resolve(err.message);
    });
  });
}

describe('origins and CORS', () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ env: { CORS_ORIGINS: `${APP},http://other.example.test` } });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('lets an allowed origin register, log in and open both transports, with CORS headers on REST', async () => {
    const preflight = await fetch(`${server.url}/v1/accounts`, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(APP);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toBe('authorization, content-type');
    expect(preflight.headers.get('vary')).toContain('Origin');

    const username = uniqueName('browser');
    const password = `password-${username}`;
    const created = await fetch(`${server.url}/v1/accounts`, {
      method: 'POST',
      headers: { origin: APP, 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('access-control-allow-origin')).toBe(APP);
    const login = await fetch(`${server.url}/v1/sessions`, {
      method: 'POST',
      headers: { origin: APP, 'content-type': 'application/json' },
      body: JSON.stringify({ username, password, device: await loginDevice(server.url, username) }),
    });
    expect(login.status).toBe(201);
    expect(login.headers.get('access-control-allow-origin')).toBe(APP);
    expect(login.headers.get('access-control-expose-headers')).toContain('Retry-After');
    const { token } = (await login.json()) as { token: string };

    expect(await upgradeStatus(server.url, { origin: APP }, ['parley.v1', `bearer.${token}`])).toBe(0);
    expect(await ioOutcome(server.url, APP, token, ['polling'])).toBe('connected');
    expect(await ioOutcome(server.url, APP, token, ['websocket'])).toBe('connected');
    expect(await ioOutcome(server.url, APP, token, ['polling', 'websocket'])).toBe('connected');
  });

  it('treats the server’s own origin as allowed without listing it', async () => {
    const res = await fetch(`${server.url}/healthz`, { headers: { origin: server.url } });
    expect(res.status).toBe(200);
    const { token } = await rawAccount(server.url, 'same');
    expect(await upgradeStatus(server.url, { origin: server.url }, ['parley.v1', `bearer.${token}`])).toBe(0);
    expect(await ioOutcome(server.url, server.url, token, ['polling'])).toBe('connected');
  });

  it('refuses any other origin on REST (403 forbidden, no CORS headers, preflight included), on the WebSocket upgrade and on Socket.IO', async () => {
    const { token } = await rawAccount(server.url, 'target');
    for (const origin of [EVIL, 'null', `${APP}/`, 'http://app.example.test']) {
      const preflight = await fetch(`${server.url}/v1/accounts`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
      expect(preflight.status).toBe(403);
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
      const res = await fetch(`${server.url}/v1/users?username=nobody`, { headers: { origin, authorization: `Bearer ${token}` } });
      expect(res.status).toBe(403);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(await res.json()).toEqual({ error: { code: 'forbidden', message: 'origin not allowed' } });

      expect(await upgradeStatus(server.url, { origin }, ['parley.v1', `bearer.${token}`])).toBe(403);

      const poll = await fetch(`${server.url}${SOCKETIO_PATH}/?EIO=4&transport=polling`, { headers: { origin } });
      expect(poll.status).toBe(403);
      expect(poll.headers.get('access-control-allow-origin')).toBeNull();
      expect(await poll.json()).toEqual({ error: { code: 'forbidden', message: 'origin not allowed' } });
      expect(await ioOutcome(server.url, origin, token, ['polling'])).not.toBe('connected');
      expect(await ioOutcome(server.url, origin, token, ['websocket'])).toBe('forbidden');
    }
  });

  it('lets clients that send no Origin through (non-browser apps)', async () => {
    const { token } = await rawAccount(server.url, 'native');
    expect(await upgradeStatus(server.url, {}, ['parley.v1', `bearer.${token}`])).toBe(0);
    const poll = await fetch(`${server.url}${SOCKETIO_PATH}/?EIO=4&transport=polling`);
    expect(poll.status).toBe(200);
    expect(poll.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers the WebSocket upgrade 403 with the documented JSON body', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve) => {
      void import('ws').then(({ default: WebSocket }) => {
        const ws = new WebSocket(server.url.replace(/^http/, 'ws') + '/v1/ws', ['parley.v1'], { headers: { origin: EVIL } });
        ws.on('unexpected-response', (_req, r) => {
          let body = '';
          r.on('data', (d: Buffer) => (body += d.toString()));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
        });
        ws.on('error', () => {});
      });
    });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toEqual({ error: { code: 'forbidden', message: 'origin not allowed' } });
    await until(() => server.running, 'server still running');
  });
});
