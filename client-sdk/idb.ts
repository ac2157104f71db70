// IndexedDB's callbacks as promises, with its failures as the SDK's errors: shared by the browser key store and message store.
import { ParleyError } from '../protocol/errors.js';

/** The request and transaction helpers of one store; `label` names it in errors ("key store", "message store"). */
export function idb(label: string) {
  /** An IndexedDB (or Web Crypto) failure as the SDK's error, never with a value in it. */
  const wrap = (err: unknown): ParleyError => {
    if (err instanceof ParleyError) return err;
    const e = err as { name?: string; message?: string } | null;
    return new ParleyError('unavailable', `${label}: ${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`);
  };
  const request = <T>(req: IDBRequest<T>): Promise<T> =>
    new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(wrap(req.error));
    });
  /** Resolves when the transaction has committed (with `durability: 'strict'`, flushed to disk). */
  const done = (tx: IDBTransaction): Promise<void> =>
    new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onabort = () => reject(wrap(tx.error ?? new Error('transaction aborted')));
    });
  /** The IndexedDB given, or the global one. */
  const factory = (given: IDBFactory | undefined): IDBFactory => {
    const f = given ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (!f) throw new ParleyError('unavailable', `${label}: IndexedDB is not available here (pass options.factory)`);
    return f;
  };
  return { wrap, request, done, factory };
}
