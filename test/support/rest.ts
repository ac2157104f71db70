// REST calls for end-to-end suites: one request's status and JSON body, with or without a bearer token.

export interface RestAnswer<T> {
  status: number;
  /** The parsed JSON body (null for 204 or an empty body). */
  body: T;
}

/**
 * @example const { status, body } = await rest(server.url, 'GET', '/v1/conversations', { token })
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- suites read whatever fields they check
export async function rest<T = any>(url: string, method: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<RestAnswer<T>> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}
