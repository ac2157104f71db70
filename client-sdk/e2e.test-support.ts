// Shared by the E2E unit tests: what error code a call fails with.

/** The `code` of what `fn` throws, or 'no error'. */
export function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return 'no error';
}
