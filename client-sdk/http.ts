// The SDK's REST calls (fetch, available in Node 20 and browsers) and its error type.

import { ParleyError } from '../protocol/errors.js';

export { ParleyError };

export async function request<T>(base: string, method: string, path: string, options: { body?: unknown; token?: string } = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(new URL(path, base), {
      method,
      headers: {
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (err) {
    throw new ParleyError('unavailable', `cannot reach server: ${(err as Error).message}`);
  }
  if (res.status === 204) return undefined as T;
  const json = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string; details?: Record<string, unknown> } };
  if (!res.ok) {
    const e = json.error ?? { code: 'internal', message: `HTTP ${res.status}` };
    throw new ParleyError(e.code, e.message, res.status, e.details);
  }
  return json as T;
}
