// The error type shared by the SDK and the key checks in this folder, with the server's stable `code`.

/** An error from the server or the SDK, with the server's stable `code` (docs/protocol.md). */
export class ParleyError extends Error {
  override name = 'ParleyError';
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}
