// History for a new device: the archive format, and handing it over as one encrypted file whose reference and key travel to that one device over the pairwise session.
import type { HistoryOffer } from './content.js';
import type { FileRef } from './files.js';
import type { MessageHistory } from './history.messages.js';
import { bodyJson, fromBody, type HistoryRecord, isActionRecord } from './history.records.js';
import { ParleyError } from './http.js';

/** The archive's `type` and version: anything else is refused. */
const ARCHIVE_TYPE = 'parley.history';
const ARCHIVE_VERSION = 1;

/** One entry of an archive: the store entry's plain fields, and its body's JSON (history.records.ts). */
interface ArchiveEntry {
  c: string;
  s: number;
  id: string;
  t?: string;
  at: number;
  b: Record<string, unknown>;
}

/**
 * The archive: UTF-8 JSON `{"v":1,"type":"parley.history","entries":[{c, s, id, t?, at, b}]}`,
 * one entry per message or action (c: conversation, s: seq, t: the target of an action, at:
 * sent at, b: the body as the store seals it). It travels only as an encrypted file.
 */
export function encodeArchive(records: readonly HistoryRecord[]): Uint8Array {
  const entries: ArchiveEntry[] = records.map((r) => ({
    c: r.conversationId,
    s: r.seq,
    id: r.id,
    ...(isActionRecord(r) ? { t: r.action.target } : {}),
    at: r.sentAt,
    b: bodyJson(r),
  }));
  return new TextEncoder().encode(JSON.stringify({ v: ARCHIVE_VERSION, type: ARCHIVE_TYPE, entries }));
}

/** The records of an archive, every field checked (it comes from another device: hostile input); throws `malformed`. */
export function decodeArchive(bytes: Uint8Array): HistoryRecord[] {
  let raw: { v?: unknown; type?: unknown; entries?: unknown };
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes)) as typeof raw;
  } catch {
    throw new ParleyError('malformed', 'the history archive is not JSON');
  }
  if (raw?.v !== ARCHIVE_VERSION || raw.type !== ARCHIVE_TYPE || !Array.isArray(raw.entries)) throw new ParleyError('malformed', 'not a history archive this client reads');
  return raw.entries.map((e: unknown) => {
    const x = (e ?? {}) as Partial<ArchiveEntry>;
    const ok =
      typeof x.c === 'string' &&
      x.c.length > 0 &&
      x.c.length <= 200 &&
      Number.isSafeInteger(x.s) &&
      x.s! > 0 &&
      typeof x.id === 'string' &&
      x.id.length > 0 &&
      x.id.length <= 200 &&
      (x.t === undefined || typeof x.t === 'string') &&
      Number.isSafeInteger(x.at) &&
      typeof x.b === 'object' &&
      x.b !== null &&
      !Array.isArray(x.b);
    if (!ok) throw new ParleyError('malformed', 'a history archive entry is malformed');
    return fromBody({ conversationId: x.c!, seq: x.s!, id: x.id!, ...(x.t !== undefined ? { target: x.t } : {}), sentAt: x.at! }, x.b!);
  });
}

export interface HistoryTransferOptions {
  history: MessageHistory;
  /** Encrypts and uploads bytes as a file that is not shared: only this user's devices may download it. */
  upload(data: Uint8Array, name: string): Promise<FileRef>;
  /** Downloads, checks (hash, length) and decrypts a file. */
  download(ref: FileRef): Promise<Uint8Array>;
}

/** Packs this device's history for another device, and imports one handed to this device. */
export class HistoryTransfer {
  constructor(private readonly o: HistoryTransferOptions) {}

  /** The offer for another device: the archive uploaded as one encrypted file (the server sees its padded size only). */
  async pack(): Promise<HistoryOffer> {
    const records = await this.o.history.exportRecords();
    const file = await this.o.upload(encodeArchive(records), 'history.parley');
    return { type: 'history', file, messages: records.filter((r) => !isActionRecord(r)).length };
  }

  /** Downloads, checks and imports an offered archive; how many messages it held. */
  async receive(offer: HistoryOffer): Promise<number> {
    const records = decodeArchive(await this.o.download(offer.file));
    return this.o.history.importRecords(records);
  }
}
