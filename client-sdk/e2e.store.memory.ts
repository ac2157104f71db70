// The in-memory key store: the default; everything is lost when the process ends (so each run is a new device).
import type { JsonValue, KeyChange, KeySection, KeyStore } from './e2e.store.js';

/**
 * Values are kept as JSON text, so what callers get is always their own copy.
 * @example createClient({ url, username, password, keyStore: memoryKeyStore() })
 */
export function memoryKeyStore(): KeyStore {
  const sections = new Map<KeySection, Map<string, string>>();
  const section = (s: KeySection) => {
    let m = sections.get(s);
    if (!m) sections.set(s, (m = new Map()));
    return m;
  };
  return {
    get: async (s, id) => {
      const raw = section(s).get(id);
      return raw === undefined ? undefined : (JSON.parse(raw) as JsonValue);
    },
    ids: async (s) => [...section(s).keys()],
    write: async (changes: KeyChange[]) => {
      const encoded = changes.map((c) => [c, c.value === undefined ? undefined : JSON.stringify(c.value)] as const);
      for (const [c, raw] of encoded) {
        if (raw === undefined) section(c.section).delete(c.id);
        else section(c.section).set(c.id, raw);
      }
    },
  };
}
