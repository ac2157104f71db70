// The Parley client: accounts, an auto-reconnecting socket, an outbox of unacknowledged sends, and per-device encryption.
import { open, ready, seal, generateKeyPair, type KeyPair } from './crypto.js';
import { type Content, decodeContent, encodeContent } from './content.js';
import { Emitter } from './emitter.js';
import { ciphertextSize, downloadFile, encryptFile, type FileRef, fileRefOf, type Progress, uploadCiphertext } from './files.js';
import { ParleyError, request } from './http.js';
import { CLOSE, PROTOCOL, shouldReconnect, WS_PATH, type ClientFrame, type ErrorFrame, type ReceiptKind, type ServerFrame } from './protocol.js';

export interface Message {
  id: string;
  from: string;
  fromDevice: string;
  conversationId: string;
  seq: number;
  text: string;
  sentAt: number;
  /** Present when the message carries a file. */
  file?: ReceivedFile;
}

/** A file in a received message. Its key and hash stay inside the SDK. */
export interface ReceivedFile {
  id: string;
  name: string;
  /** Media type as the sender gave it ('' when unknown). */
  type: string;
  /** Plaintext bytes. */
  size: number;
  /**
   * Fetches, checks and decrypts the file: the plaintext bytes. Rejects with `integrity`
   * (truncated, extended, or not the ciphertext that was sent) or `undecryptable` (a chunk
   * altered or reordered), `not_found` when it expired or is not shared with you.
   */
  download(options?: { onProgress?: (p: Progress) => void }): Promise<Uint8Array>;
}

export interface SendFileOptions {
  name: string;
  /** Media type, e.g. image/png. Default ''. */
  type?: string;
  /** Called as the ciphertext goes out (also emitted as the client event 'upload_progress'). */
  onProgress?: (p: Progress) => void;
}

export interface SendFileResult extends SendResult {
  fileId: string;
}

export interface Receipt {
  kind: ReceiptKind;
  conversationId: string;
  /** Every message up to and including this seq has been delivered to / read by `by`. */
  seq: number;
  by: string;
}

export interface SendResult {
  id: string;
  conversationId: string;
  seq: number;
}

export interface ClientEvents extends Record<string, unknown> {
  message: Message;
  receipt: Receipt;
  typing: { conversationId: string; from: string; active: boolean };
  presence: { userId: string; online: boolean; lastSeen: number | null };
  connected: { deviceId: string };
  disconnected: { code: number; reason: string; willReconnect: boolean };
  caught_up: Record<string, never>;
  /** Bytes of a file's ciphertext sent so far (sendFile); the last event of an upload carries its `fileId`. */
  upload_progress: Progress;
  /** Bytes of a file's ciphertext received so far (file.download()). */
  download_progress: Progress;
  /** Problems that belong to no call: an undecryptable message, a server error frame. */
  error: ParleyError;
}

/** Where a device's id and keys are kept between runs. */
export interface DeviceState {
  deviceId?: string;
  keys: KeyPair;
}
export interface KeyStore {
  load(): Promise<DeviceState | null>;
  save(state: DeviceState): Promise<void>;
}

/** Keeps the device in memory: a new client object is a new device. */
export function memoryKeyStore(): KeyStore {
  let state: DeviceState | null = null;
  return { load: async () => state, save: async (s) => void (state = s) };
}

/** The part of the WebSocket API the client uses (browser WebSocket and the `ws` package both have it). */
interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: { message?: string; error?: unknown }) => void) | null;
}
type SocketCtor = new (url: string, protocols: string[]) => SocketLike;

export interface ClientOptions {
  /**
   * The server's base URL, e.g. http://localhost:8080, or several gateways of one cluster:
   * the client uses one at a time and moves to the next when it cannot reach it.
   */
  url: string | string[];
  username: string;
  password: string;
  deviceName?: string;
  keyStore?: KeyStore;
  /** Reconnect backoff: doubles from `initialDelayMs` to `maxDelayMs`, with jitter. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Unacknowledged sends allowed on the wire at once (the rest wait in the outbox). Default 64. */
  maxInFlight?: number;
  /** A WebSocket constructor; defaults to the global one, or the `ws` package in Node. */
  WebSocket?: SocketCtor;
}

interface OutboxEntry {
  id: string;
  to: string;
  plaintext: Uint8Array;
  frame?: Extract<ClientFrame, { type: 'send' }>;
  inFlight: boolean;
  resolve: (r: SendResult) => void;
  reject: (e: ParleyError) => void;
}

const OPEN = 1;
/** Error codes after which the same request may succeed later. (`internal` is a server bug: not retried.) */
const TEMPORARY = new Set(['unavailable', 'rate_limited']);
const dec = new TextDecoder();

/**
 * A Parley client for one device.
 *
 * Delivery: messages arrive on 'message' once each, in seq order per conversation, across
 * reconnects; the client acknowledges them after the listeners ran. Sends wait in an outbox
 * and are resent with the same id after a reconnect until the server acknowledges them.
 *
 * @example
 * const alice = createClient({ url: 'http://localhost:8080', username: 'alice', password: 'correct horse' });
 * await alice.register(); await alice.connect();
 * const bob = await alice.findUser('bob');
 * await alice.sendText(bob, 'hi');
 */
export class ParleyClient extends Emitter<ClientEvents> {
  private token: string | null = null;
  private tokenExpiresAt = 0;
  private _userId: string | null = null;
  private device: DeviceState | null = null;
  private socket: SocketLike | null = null;
  private isReady = false;
  private closedByUser = false;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly outbox = new Map<string, OutboxEntry>();
  private readonly lastSeq = new Map<string, number>();
  private readonly pendingAcks = new Map<string, number>();
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly pendingReads = new Map<string, number>();
  private readonly receiptsSeen = new Map<string, number>();
  private readonly deviceKeys = new Map<string, string>();
  private readonly userDevices = new Map<string, { id: string; publicKey: string }[]>();
  private inbound: Promise<void> = Promise.resolve();
  private pumping: Promise<void> = Promise.resolve();
  private maxPayloadBytes = Infinity;
  private readonly presenceWatch = new Set<string>();
  private readonly keyStore: KeyStore;
  private readonly urls: string[];
  private urlIndex = 0;
  private fileLimits: { maxBytes: number } | undefined;

  constructor(private readonly options: ClientOptions) {
    super();
    this.keyStore = options.keyStore ?? memoryKeyStore();
    this.urls = typeof options.url === 'string' ? [options.url] : [...options.url];
    if (this.urls.length === 0) throw new ParleyError('invalid', 'no server url');
  }

  /** The logged-in user's id. */
  get userId(): string {
    if (!this._userId) throw new ParleyError('invalid', 'not logged in');
    return this._userId;
  }

  /** The current session token, for apps that call the REST API themselves (null before login). */
  get accessToken(): string | null {
    return this.token;
  }

  get deviceId(): string | undefined {
    return this.device?.deviceId;
  }

  get connected(): boolean {
    return this.isReady;
  }

  /** Creates the account, then logs in this device. */
  async register(): Promise<void> {
    await this.call('POST', '/v1/accounts', {
      body: { username: this.options.username, password: this.options.password },
    });
    await this.login();
  }

  /** Logs in this device (creating it on first login) and publishes its public key. */
  async login(): Promise<void> {
    await ready();
    this.device ??= (await this.keyStore.load()) ?? { keys: generateKeyPair() };
    const s = await this.call<{ token: string; expiresAt: number; userId: string; deviceId: string }>('POST', '/v1/sessions', {
      body: {
        username: this.options.username,
        password: this.options.password,
        device: { ...(this.device.deviceId ? { id: this.device.deviceId } : {}), name: this.options.deviceName ?? 'parley-sdk', publicKey: this.device.keys.publicKey },
      },
    });
    this.token = s.token;
    this.tokenExpiresAt = s.expiresAt;
    this._userId = s.userId;
    if (this.device.deviceId !== s.deviceId) {
      this.device = { ...this.device, deviceId: s.deviceId };
      await this.keyStore.save(this.device);
    }
  }

  /** The user id of a username; rejects with code `not_found` when there is none. */
  async findUser(username: string): Promise<string> {
    const r = await this.call<{ id: string }>('GET', `/v1/users?username=${encodeURIComponent(username)}`, { token: await this.freshToken() });
    return r.id;
  }

  /**
   * Opens the connection and resolves once the server accepted it; the client then stays
   * connected, reconnecting with backoff, until `close()`. Rejects only on a final failure
   * (bad credentials, this device replaced by another connection).
   */
  connect(): Promise<void> {
    this.closedByUser = false;
    if (this.isReady) return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (!this.socket && !this.reconnectTimer) void this.openSocket();
    return p;
  }

  /** Closes the connection for good. Unacknowledged sends stay in the outbox for a later connect(). */
  async close(): Promise<void> {
    this.closedByUser = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.flushAcks();
    const s = this.socket;
    this.socket = null;
    this.isReady = false;
    if (s && s.readyState <= OPEN) {
      await new Promise<void>((resolve) => {
        s.onclose = () => resolve();
        s.close(1000, 'client closed');
        setTimeout(resolve, 1000);
      });
    }
  }

  /** Encrypts `text` for each of the user's devices (and your other devices) and sends it; resolves on the server's ack. */
  sendText(userId: string, text: string): Promise<SendResult> {
    return this.sendContent(userId, { text });
  }

  /**
   * Sends a file: encrypts it on this device under a fresh key (secretstream, 64 KiB chunks),
   * uploads the ciphertext, lets the conversation's members download it, then sends a message
   * whose encrypted content carries the file's id, key, ciphertext hash, size, name and type.
   * Progress goes to `options.onProgress` and to 'upload_progress' events.
   * @example await alice.sendFile(bobId, bytes, { name: 'cat.png', type: 'image/png' })
   */
  async sendFile(to: string, data: Uint8Array | Blob, options: SendFileOptions): Promise<SendFileResult> {
    await ready();
    // Refuse here what the server would refuse (413), before encrypting and sending it all.
    this.fileLimits ??= await this.call<{ maxBytes: number }>('GET', '/v1/files/limits', { token: await this.freshToken() });
    const size = ciphertextSize(data instanceof Uint8Array ? data.length : data.size);
    if (size > this.fileLimits.maxBytes) {
      throw new ParleyError('too_large', `file too large for this server: ${size} bytes encrypted, the limit is ${this.fileLimits.maxBytes}`);
    }
    const encrypted = await encryptFile(data);
    const report = (p: Progress) => {
      options.onProgress?.(p);
      this.emit('upload_progress', p);
    };
    let uploaded: { id: string } | undefined;
    for (let attempt = 1; !uploaded; attempt++) {
      try {
        uploaded = await uploadCiphertext(this.baseUrl(), await this.freshToken(), encrypted, (loaded) =>
          report({ name: options.name, loaded, total: encrypted.size }),
        );
      } catch (err) {
        if (!(err instanceof ParleyError) || !TEMPORARY.has(err.code) || attempt >= 3) throw err;
        if (err.status === undefined) this.urlIndex++; // unreachable: try the next gateway
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
    report({ fileId: uploaded.id, name: options.name, loaded: encrypted.size, total: encrypted.size });
    await this.shareFile(uploaded.id, to);
    const file = fileRefOf(encrypted, uploaded.id, { name: options.name, type: options.type ?? '' });
    return { ...(await this.sendContent(to, { text: '', file })), fileId: uploaded.id };
  }

  /** Encrypts content for the recipient's devices and sends it through the outbox. The one path every send takes. */
  private sendContent(to: string, content: Content): Promise<SendResult> {
    return this.enqueueSend(to, encodeContent(content));
  }

  /** Lets the members of the conversation with `to` download a file (before the message that names it is sent). */
  private async shareFile(fileId: string, to: string): Promise<void> {
    await this.call('POST', `/v1/files/${encodeURIComponent(fileId)}/shares`, { body: { userId: to }, token: await this.freshToken() });
  }

  private receivedFile(ref: FileRef): ReceivedFile {
    return {
      id: ref.id,
      name: ref.name,
      type: ref.type,
      size: ref.size,
      download: (options = {}) =>
        downloadFile(
          () => this.baseUrl(),
          () => this.freshToken(),
          ref,
          (loaded) => {
            const p: Progress = { fileId: ref.id, name: ref.name, loaded, total: ciphertextSize(ref.size) };
            options.onProgress?.(p);
            this.emit('download_progress', p);
          },
        ),
    };
  }

  /** Marks everything up to `seq` in the conversation read; the sender's devices get a 'read' receipt. */
  async markRead(conversationId: string, seq: number): Promise<void> {
    this.pendingReads.set(conversationId, Math.max(seq, this.pendingReads.get(conversationId) ?? 0));
    this.flushReads();
  }

  /** Tells the other members you are (or stopped) typing. Ephemeral: dropped when offline. */
  setTyping(conversationId: string, active: boolean): void {
    this.sendFrame({ type: 'typing', conversationId, active });
  }

  /** Asks for 'presence' events about these users (people you share a conversation with); renewed after each reconnect. */
  subscribePresence(userIds: string[]): void {
    for (const u of userIds) this.presenceWatch.add(u);
    this.sendFrame({ type: 'presence.subscribe', users: userIds });
  }

  private enqueueSend(to: string, plaintext: Uint8Array): Promise<SendResult> {
    return new Promise<SendResult>((resolve, reject) => {
      const id = crypto.randomUUID();
      this.outbox.set(id, { id, to, plaintext, inFlight: false, resolve, reject });
      void this.pump();
    });
  }

  /** Sends outbox entries in order while connected, up to the in-flight window; one pass at a time. */
  private pump(): Promise<void> {
    this.pumping = this.pumping.then(() => this.pumpOnce());
    return this.pumping;
  }

  private async pumpOnce(): Promise<void> {
    const max = this.options.maxInFlight ?? 64;
    let inFlight = [...this.outbox.values()].filter((e) => e.inFlight).length;
    for (const entry of this.outbox.values()) {
      if (!this.isReady || inFlight >= max) return;
      if (entry.inFlight) continue;
      entry.inFlight = true;
      inFlight++;
      try {
        entry.frame ??= await this.encryptFor(entry);
      } catch (err) {
        const e = err instanceof ParleyError ? err : new ParleyError('invalid', (err as Error).message);
        if (TEMPORARY.has(e.code)) {
          // The server is unreachable or busy: keep the send, try again later (or on reconnect).
          entry.inFlight = false;
          setTimeout(() => void this.pump(), 500);
          return;
        }
        this.outbox.delete(entry.id);
        entry.reject(e);
        continue;
      }
      if (!this.isReady) {
        entry.inFlight = false;
        return;
      }
      if (JSON.stringify(entry.frame).length > this.maxPayloadBytes) {
        // The server would close the socket (1009) and the resend would do it again.
        this.outbox.delete(entry.id);
        entry.reject(new ParleyError('too_large', 'message too large for this server'));
        continue;
      }
      this.sendFrame(entry.frame);
    }
  }

  private async encryptFor(entry: OutboxEntry): Promise<Extract<ClientFrame, { type: 'send' }>> {
    const [theirs, mine] = await Promise.all([this.devicesOf(entry.to), this.devicesOf(this.userId)]);
    const sk = this.device!.keys.secretKey;
    const payloads = [...theirs, ...mine]
      .filter((d) => d.id !== this.device!.deviceId)
      .map((d) => ({ device: d.id, body: seal(entry.plaintext, d.publicKey, sk) }));
    return { type: 'send', id: entry.id, to: entry.to, payloads };
  }

  private async devicesOf(userId: string): Promise<{ id: string; publicKey: string }[]> {
    const cached = this.userDevices.get(userId);
    if (cached) return cached;
    const r = await this.call<{ devices: { id: string; publicKey: string }[] }>('GET', `/v1/users/${userId}/devices`, {
      token: await this.freshToken(),
    });
    this.userDevices.set(userId, r.devices);
    for (const d of r.devices) this.deviceKeys.set(d.id, d.publicKey);
    return r.devices;
  }

  private baseUrl(): string {
    return this.urls[this.urlIndex % this.urls.length]!;
  }

  /** A REST call to the current gateway; when it cannot be reached, the next ones are tried once each. */
  private async call<T>(method: string, path: string, options: { body?: unknown; token?: string } = {}): Promise<T> {
    for (let tried = 1; ; tried++) {
      try {
        return await request<T>(this.baseUrl(), method, path, options);
      } catch (err) {
        if (!(err instanceof ParleyError) || err.status !== undefined || tried >= this.urls.length) throw err;
        this.urlIndex++;
      }
    }
  }

  private async freshToken(): Promise<string> {
    if (!this.token || this.tokenExpiresAt - Date.now() < 60_000) await this.login();
    return this.token!;
  }

  private async openSocket(): Promise<void> {
    let token: string;
    try {
      token = await this.freshToken();
    } catch (err) {
      return this.failOrRetry(err);
    }
    if (this.closedByUser) return;
    const Ctor = this.options.WebSocket ?? (globalThis as { WebSocket?: SocketCtor }).WebSocket ?? ((await import('ws')).default as unknown as SocketCtor);
    const url = new URL(WS_PATH, this.baseUrl());
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new Ctor(url.toString(), [PROTOCOL, `bearer.${token}`]);
    this.socket = socket;
    let failure = '';
    socket.onerror = (ev) => {
      failure = ev.message ?? String(ev.error ?? '');
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      this.onFrame(typeof ev.data === 'string' ? ev.data : dec.decode(ev.data as Uint8Array));
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      const wasReady = this.isReady;
      this.isReady = false;
      for (const e of this.outbox.values()) e.inFlight = false;
      if (/\b401\b/.test(failure)) this.token = null; // log in again before the next attempt
      // The gateway is gone or refused us: try the next one (a no-op with a single URL).
      if (!wasReady || ev.code === 1006 || ev.code === CLOSE.GOING_AWAY) this.urlIndex++;
      const willReconnect = !this.closedByUser && (shouldReconnect(ev.code) || ev.code === CLOSE.UNAUTHORIZED);
      if (wasReady) this.emit('disconnected', { code: ev.code, reason: ev.reason, willReconnect });
      if (ev.code === CLOSE.UNAUTHORIZED) this.token = null;
      if (willReconnect) this.scheduleReconnect();
      else if (!this.closedByUser) this.rejectWaiters(new ParleyError('closed', `connection closed: ${ev.reason || ev.code}`));
    };
  }

  private failOrRetry(err: unknown): void {
    const e = err instanceof ParleyError ? err : new ParleyError('unavailable', String(err));
    if (e.code === 'unauthorized' || e.code === 'invalid' || e.code === 'not_found') {
      this.rejectWaiters(e);
      this.emit('error', e);
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closedByUser || this.reconnectTimer) return;
    const initial = this.options.reconnect?.initialDelayMs ?? 250;
    const max = this.options.reconnect?.maxDelayMs ?? 10_000;
    const base = Math.min(max, initial * 2 ** this.attempt++);
    const delay = base / 2 + Math.random() * (base / 2); // "equal jitter"
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.openSocket();
    }, delay);
  }

  private rejectWaiters(err: unknown): void {
    for (const w of this.connectWaiters.splice(0)) w.reject(err);
  }

  private sendFrame(frame: ClientFrame): boolean {
    if (!this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  private onFrame(raw: string): void {
    let f: ServerFrame;
    try {
      f = JSON.parse(raw) as ServerFrame;
    } catch {
      this.emit('error', new ParleyError('invalid', 'server sent malformed JSON'));
      return;
    }
    switch (f.type) {
      case 'ready':
        this.isReady = true;
        this.attempt = 0;
        this.maxPayloadBytes = f.maxPayloadBytes;
        if (this.presenceWatch.size > 0) this.sendFrame({ type: 'presence.subscribe', users: [...this.presenceWatch] });
        this.emit('connected', { deviceId: f.deviceId });
        for (const w of this.connectWaiters.splice(0)) w.resolve();
        this.flushReads();
        void this.pump();
        return;
      case 'sent': {
        const e = this.outbox.get(f.id);
        if (e) {
          this.outbox.delete(f.id);
          e.resolve({ id: f.id, conversationId: f.conversationId, seq: f.seq });
          void this.pump();
        }
        return;
      }
      case 'msg':
        this.inbound = this.inbound.then(() => this.onMessage(f));
        return;
      case 'caught_up':
        this.inbound = this.inbound.then(() => this.emit('caught_up', {}));
        return;
      case 'receipt': {
        const k = `${f.conversationId}|${f.by}|${f.kind}`;
        if ((this.receiptsSeen.get(k) ?? 0) >= f.seq) return;
        this.receiptsSeen.set(k, f.seq);
        this.emit('receipt', { kind: f.kind, conversationId: f.conversationId, seq: f.seq, by: f.by });
        return;
      }
      case 'typing':
        this.emit('typing', { conversationId: f.conversationId, from: f.from, active: f.active });
        return;
      case 'presence':
        this.emit('presence', { userId: f.userId, online: f.online, lastSeen: f.lastSeen });
        return;
      case 'error':
        this.onError(f);
        return;
      case 'pong':
        return;
    }
  }

  private async onMessage(f: Extract<ServerFrame, { type: 'msg' }>): Promise<void> {
    if ((this.lastSeq.get(f.conversationId) ?? 0) < f.seq) {
      this.lastSeq.set(f.conversationId, f.seq);
      try {
        let key = this.deviceKeys.get(f.fromDevice);
        if (!key) {
          this.userDevices.delete(f.from);
          await this.devicesOf(f.from);
          key = this.deviceKeys.get(f.fromDevice);
        }
        if (!key) throw new Error('unknown sender device');
        const content = decodeContent(open(f.body, key, this.device!.keys.secretKey));
        this.emit('message', {
          id: f.id,
          from: f.from,
          fromDevice: f.fromDevice,
          conversationId: f.conversationId,
          seq: f.seq,
          text: content.text,
          sentAt: f.sentAt,
          ...(content.file ? { file: this.receivedFile(content.file) } : {}),
        });
      } catch (err) {
        this.emit('error', new ParleyError('undecryptable', `message ${f.conversationId}#${f.seq} could not be decrypted: ${(err as Error).message}`));
      }
    }
    // Acknowledge duplicates too: the server resent them because it had no ack yet.
    this.pendingAcks.set(f.conversationId, Math.max(f.seq, this.pendingAcks.get(f.conversationId) ?? 0));
    this.ackTimer ??= setTimeout(() => this.flushAcks(), 10);
  }

  private flushAcks(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    for (const [conversationId, seq] of this.pendingAcks) {
      if (this.sendFrame({ type: 'ack', conversationId, seq })) this.pendingAcks.delete(conversationId);
    }
  }

  private flushReads(): void {
    if (!this.isReady) return;
    for (const [conversationId, seq] of this.pendingReads) {
      if (this.sendFrame({ type: 'read', conversationId, seq })) this.pendingReads.delete(conversationId);
    }
  }

  private onError(f: ErrorFrame): void {
    const entry = f.ref ? this.outbox.get(f.ref) : undefined;
    const err = new ParleyError(f.code, f.message, undefined, f.details);
    if (!entry) {
      this.emit('error', err);
      return;
    }
    if (f.code === 'devices_changed') {
      // Someone added or removed a device: refetch both device lists and encrypt again.
      this.userDevices.delete(entry.to);
      this.userDevices.delete(this.userId);
      entry.frame = undefined;
      entry.inFlight = false;
      void this.pump();
      return;
    }
    if (f.temporary && TEMPORARY.has(f.code)) {
      entry.inFlight = false;
      setTimeout(() => void this.pump(), f.retryAfterMs ?? 500);
      return;
    }
    this.outbox.delete(entry.id);
    entry.reject(err);
    void this.pump();
  }
}

export function createClient(options: ClientOptions): ParleyClient {
  return new ParleyClient(options);
}
