// Usernames: what a valid one is, and the lookalike skeleton that two accounts may not share.
import { z } from 'zod';

/**
 * A username as submitted: NFKC first (fullwidth `ａｌｉｃｅ` is `alice`, `ﬁ` is `fi`), then
 * 3–32 of `a-z 0-9 _ . -`. Lookups and logins match the normalized name exactly.
 * @example body: z.object({ username })
 */
export const username = z
  .string()
  .max(256)
  .normalize('NFKC')
  .min(3)
  .max(32)
  .regex(/^[a-z0-9_.-]+$/, 'lowercase letters, digits, _ . - only');

/**
 * The skeleton a username is compared by for lookalikes, in the spirit of Unicode UTS #39
 * (whose confusables.txt maps, within our alphabet, exactly `0`→O, `1`→l and `m`→rn):
 * `0`→`o`, `1`→`l`, `m`→`rn`; `.` `_` `-` are one separator, a run of them counts as one,
 * and separators at either end are dropped. Two names with the same skeleton look alike, so
 * only the first of them may be registered. Expects a valid (normalized) username.
 *
 * Migration 6 (platform/migrations.ts) computes the same in SQL for existing rows; the
 * accounts contract checks that both agree.
 * @example usernameSkeleton('_b0b.') === usernameSkeleton('bob') // 'bob'
 */
export function usernameSkeleton(name: string): string {
  return name
    .replace(/0/g, 'o')
    .replace(/1/g, 'l')
    .replace(/m/g, 'rn')
    .replace(/[._-]+/g, '.')
    .replace(/^\.|\.$/g, '');
}
