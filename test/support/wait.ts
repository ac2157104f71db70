// Waiting for conditions in end-to-end tests: polls, and fails with a message if the condition never holds.

/** `what` may be a function, to describe the state at the moment of giving up. */
export async function until(check: () => boolean | Promise<boolean>, what: string | (() => string), ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A unique username for this run. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
}
