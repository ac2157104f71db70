// Free text from clients (names): one zod schema that refuses what cannot be stored or shown safely.
import { z } from 'zod';

/**
 * Code points no free-text field may hold: C0 and C1 controls and DEL (`Cc`: NUL cannot be
 * stored in PostgreSQL text or jsonb at all, the rest garble logs and screens), surrogates
 * (`Cs`: in a JS string only a lone one can match, i.e. ill-formed UTF-16 that has no UTF-8
 * form) and the 66 noncharacters (U+FDD0–U+FDEF and the last two of every plane).
 */
const FORBIDDEN = /[\p{Cc}\p{Cs}\p{Noncharacter_Code_Point}]/u;

/**
 * Whether `s` is well-formed UTF-16: no lone surrogate (String.prototype.isWellFormed, which
 * Node 20 has but our ES2023 typings lack).
 */
export function isWellFormed(s: string): boolean {
  return !/\p{Cs}/u.test(s);
}

const hex = (cp: number) => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;

/**
 * Why `s` is not acceptable free text, or null when it is.
 * @example textProblem('a\u0000b') // 'must not contain control characters (U+0000)'
 */
export function textProblem(s: string): string | null {
  const m = FORBIDDEN.exec(s);
  if (!m) return null;
  const cp = m[0].codePointAt(0)!;
  if (cp >= 0xd800 && cp <= 0xdfff) return `must be well-formed Unicode (lone surrogate ${hex(cp)})`;
  if (/\p{Cc}/u.test(m[0])) return `must not contain control characters (${hex(cp)})`;
  return `must not contain noncharacters (${hex(cp)})`;
}

/**
 * A free-text field (a group or device name): refuses the code points above, then
 * normalizes to NFC and trims, then bounds the length (UTF-16 units, after normalizing), so
 * the same name typed on two keyboards is stored the same way.
 * @example body: z.object({ name: safeText(1, 100) })
 */
export function safeText(min: number, max: number) {
  return z
    .string()
    .check((ctx) => {
      const problem = textProblem(ctx.value);
      if (problem) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
    })
    .normalize('NFC')
    .trim()
    .min(min)
    .max(max);
}
