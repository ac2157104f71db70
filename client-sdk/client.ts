// The Parley client: a façade over accounts, the socket (socket.ts), the outbox (outbox.ts), the inbox (inbox.ts) and end-to-end encryption per device.
import { type Content, type Decoded, encodeContent, type HistoryOffer, isAction, isContent, MAX_TIMER_SECONDS, mentions, validEmoji, validId, validTimer } from './content.js';
import { sodiumReady, toB64 } from '../protocol/bytes.js';
import { type AccountDevice, AccountApi, type BlockedUser, type ConversationPage, type ReportInput } from './account.js';
import { BlockList } from './blocks.js';
import { restDirectory } from './e2e.directory.js';
import { signLoginProof } from '../protocol/login-proof.js';
import { SESSION_RESET_PAYLOAD, SessionManager } from './e2e.session-manager.js';
import type { DeviceRecord } from './e2e.store.js';
import { memoryKeyStore } from './e2e.store.memory.js';
import type { ListedDevice } from '../protocol/trust.js';
import type { ClientEvents, ClientOptions, DeleteResult, Message, SendFileOptions, SendFileResult, SendResult, TextOptions } from './client.types.js';
import { DisappearingSettings } from './disappearing.js';
import { ExpiryTimers } from './expiry.js';
import type { PushPayload, PushTarget } from '../protocol/push.js';
import { PushedLog, pushedMessage } from './push.js';
import { ReceivedMessages } from './received.js';
import { type Clock, systemClock } from './clock.js';
import { Emitter } from './emitter.js';
import { Envelopes } from './envelopes.js';
import { FileSharing } from './files.sharing.js';
import { memoryMessageStore } from './history.memory.js';
import { MessageHistory } from './history.messages.js';
import { HistoryTransfer } from './history.transfer.js';
import { GroupDirectory, type GroupEvent, type GroupInfo, type GroupReceipts, type GroupRole, type GroupSummary, SenderKeyTracker } from './groups.js';
import { GroupNames } from './groups.names.js';
import { ParleyError, request } from './http.js';
import type { ClientFrame, ErrorFrame, MsgFrame, ServerFrame } from '../protocol/frames.js';
import { Inbox } from './inbox.js';
import { Outbox, type OutboxEntry, type SendFrame } from './outbox.js';
import { Gateways, ParleySocket, type TransportName } from './socket.js';
import { TrustManager } from './trust.js';

/** A compile-time check that a switch handled every case: a new frame type that is not handled fails to compile. */
function assertNever(x: never): never {
  throw new ParleyError('invalid', `unhandled frame: ${JSON.stringify(x)}`);
}

/**
 * A Parley client for one device.
 *
 * Delivery: messages arrive on 'message' once each, in seq order per conversation, across
 * reconnects; the client acknowledges them after the listeners ran (inbox.ts). Sends wait in
 * an outbox and are resent with the same id after a reconnect until the server acknowledges
 * them (outbox.ts). The connection is a WebSocket, or Socket.IO where WebSocket upgrades are
 * blocked (socket.ts; `transport` says which, 'transport' events tell of changes).
 *
 * @example
 * const alice = createClient({ url: 'http://localhost:8080', username: 'alice', password: 'correct horse' });
 * await alice.register(); await alice.connect();
 * console.log(alice.transport); // 'websocket', or 'socket.io:polling' behind a proxy that blocks upgrades
 * const bob = await alice.findUser('bob');
 * await alice.sendText(bob, 'hi');
 */
export class ParleyClient extends Emitter<ClientEvents> {
  private token: string | null = null;
  private tokenExpiresAt = 0;
  private _userId: string | null = null;
  private device: DeviceRecord | null = null;
  /** Usernames by user id (they never change). */
  private readonly usernames = new Map<string, string>();
  private isReady = false;
  private connectWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly clock: Clock;
  private readonly gateways: Gateways;
  private readonly socket: ParleySocket;
  private readonly outbox: Outbox;
  private readonly inbox: Inbox;
  private readonly userDevices = new Map<string, ListedDevice[]>();
  private maxPayloadBytes = Infinity;
  private readonly presenceWatch = new Set<string>();
  private readonly sessions: SessionManager;
  private readonly trust: TrustManager;
  /** Whether this device's trust (its vouch, the user id in its sessions) was set up since login. */
  private trustReady: Promise<void> | null = null;
  private approved = false;
  /** Whether this device's keys are in the directory: published by this client's login, or by the client that set up the store (handlePush). */
  private keysPublished = false;
  private readonly identityReported = new Set<string>();
  private readonly groups = new GroupDirectory(async (method, path, body) => this.call(method, path, { body, token: await this.freshToken() }));
  private readonly names: GroupNames;
  private readonly envelopes: Envelopes;
  private readonly files: FileSharing;
  /** Ids known to be groups (from group messages and events), so sendFile knows how to share. */
  private readonly knownGroups = new Set<string>();
  private readonly pushed: PushedLog;
  private readonly settings: DisappearingSettings;
  private readonly timers: ExpiryTimers;
  private readonly received: ReceivedMessages;
  private readonly messageHistory: MessageHistory;
  private readonly transfer: HistoryTransfer;
  private readonly account = new AccountApi({ call: (method, path, o) => this.call(method, path, o), freshToken: () => this.freshToken() });
  /** The users this user blocks: their group messages are dropped here (blocks.ts says when the list is fetched). */
  private readonly blockList = new BlockList(this.account);
  /** Sends take their timer from the store in call order, so they reach the outbox in that order. */
  private sendQueue: Promise<unknown> = Promise.resolve();

  /** The account's password: the option given, until changePassword replaces it. */
  private password: string;

  constructor(private readonly options: ClientOptions) {
    super();
    this.password = options.password;
    this.clock = options.clock ?? systemClock;
    this.gateways = new Gateways(options.url);
    this.socket = new ParleySocket({
      gateways: this.gateways,
      token: { get: () => this.freshToken(), refused: () => void (this.token = null) },
      ...(options.transport ? { transport: options.transport } : {}),
      ...(options.reconnect ? { reconnect: options.reconnect } : {}),
      ...(options.WebSocket ? { WebSocket: options.WebSocket } : {}),
      clock: this.clock,
      ...(options.random ? { random: options.random } : {}),
    });
    this.socket.on('frame', (raw) => this.onFrame(raw));
    this.socket.on('transport', (t) => this.emit('transport', t));
    this.socket.on('close', (ev) => this.onClose(ev));
    this.socket.on('failed', (err) => {
      this.rejectWaiters(err);
      if (err.code !== 'closed') this.emit('error', err);
    });
    this.outbox = new Outbox({
      encrypt: (entry) => this.encryptFor(entry),
      send: (frame) => this.sendFrame(frame),
      isReady: () => this.isReady,
      maxPayloadBytes: () => this.maxPayloadBytes,
      devicesChanged: (entry) => {
        if (entry.group) this.groups.forget(entry.to);
        this.userDevices.delete(entry.to);
        this.userDevices.delete(this.userId);
      },
      acknowledged: (e) => this.acknowledged(e),
      ...(options.maxInFlight !== undefined ? { maxInFlight: options.maxInFlight } : {}),
      clock: this.clock,
    });
    this.inbox = new Inbox({
      handle: (f) => this.onMessage(f),
      send: (frame) => this.sendFrame(frame),
      failed: (err) => this.failed(err),
      handledElsewhere: (c, seq) => this.pushed.has(c, seq),
      acked: (c, seq) => void this.pushed.acked(c, seq).catch((err: unknown) => this.failed(err)),
      expired: async (range) => {
        await this.pushed.forget(range.conversationId, range.to);
        this.emit('expired', range);
      },
      clock: this.clock,
    });
    this.sessions = new SessionManager({
      store: options.keyStore ?? memoryKeyStore(),
      directory: restDirectory(async (method, path, body) => this.call(method, path, { body, token: await this.freshToken() })),
      devicesOf: (userId, fresh) => {
        if (fresh) this.userDevices.delete(userId);
        return this.devicesOf(userId);
      },
      sendReset: (userId, deviceId) => this.sendControl(userId, deviceId, SESSION_RESET_PAYLOAD),
      onIdentityChanged: (e) => this.identityChanged(e),
      onSessionReset: (e) => this.emit('session_reset', e),
      trusted: (userId, deviceId, identityKey) => this.trust.isTrusted(userId, deviceId, identityKey),
    });
    this.trust = new TrustManager({
      store: this.sessions.store,
      listDevices: async (userId) => {
        this.userDevices.delete(userId);
        return this.devicesOf(userId);
      },
      me: () => ({ userId: this.userId, deviceId: this.device!.deviceId!, identity: this.device!.identity }),
      putVouch: async (deviceId, signature) => {
        await this.call('PUT', `/v1/devices/${deviceId}/vouch`, { body: { signature }, token: await this.freshToken() });
        this.userDevices.delete(this.userId);
      },
      onDeviceAdded: (e) => this.emit('device_added', e),
      onDeviceUntrusted: (e) => this.emit('device_untrusted', e),
      onDevicePending: (e) => this.emit('device_pending', e),
      onIdentityChanged: (e) => this.identityChanged(e),
    });
    this.names = new GroupNames({ groups: this.groups, sessions: this.sessions, trust: this.trust, devicesOf: (u) => this.devicesOf(u), me: () => this.userId });
    this.files = new FileSharing({
      call: async (method, path, body) => this.call(method, path, { body, token: await this.freshToken() }),
      token: () => this.freshToken(),
      baseUrl: () => this.baseUrl(),
      nextGateway: () => this.gateways.next(),
      isGroup: (id) => this.isGroup(id),
      sendMessage: (to, group, file) => this.sendContent(to, group, { text: '', file }),
      uploadProgress: (p) => this.emit('upload_progress', p),
      downloadProgress: (p) => this.emit('download_progress', p),
      clock: this.clock,
    });
    this.envelopes = new Envelopes({
      sessions: this.sessions,
      trust: this.trust,
      groups: this.groups,
      senderKeys: new SenderKeyTracker(),
      devicesOf: (u) => this.devicesOf(u),
      me: () => ({ userId: this.userId, deviceId: this.device!.deviceId! }),
      sendControl: (userId, deviceId, payload) => this.sendControl(userId, deviceId, payload),
      clock: this.clock,
    });
    const kv = this.sessions.store.kv;
    this.pushed = new PushedLog(kv);
    this.settings = new DisappearingSettings(kv);
    this.messageHistory = new MessageHistory({ store: options.messageStore ?? memoryMessageStore(), key: options.historyKey ?? null, file: (ref) => this.files.received(ref) });
    this.transfer = new HistoryTransfer({ history: this.messageHistory, upload: (data, name) => this.files.upload(data, { name }), download: (ref) => this.files.received(ref).download() });
    this.timers = new ExpiryTimers({
      kv,
      clock: this.clock,
      expired: (m) => this.emit('expire', m),
      erase: (ms) => this.messageHistory.eraseAll(ms),
      failed: (err) => this.failed(err),
    });
    this.received = new ReceivedMessages({
      open: (f) => this.envelopes.open(f),
      settings: this.settings,
      timers: this.timers,
      history: this.messageHistory,
      me: () => this.userId,
      blocked: (userId) => this.blockList.has(userId),
      changed: (e) => this.emit('disappearing', e),
      acted: (e) => this.emit(e.kind, e.event as never),
      offered: (f, offer) => this.historyOffered(f, offer),
    });
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

  /**
   * The transport of the current (or last) connection: 'websocket', 'socket.io:polling' or
   * 'socket.io:websocket' (null before the first). Changes are emitted as 'transport'.
   */
  get transport(): TransportName | null {
    return this.socket.transport;
  }

  /** Creates the account, then logs in this device. */
  async register(): Promise<void> {
    await this.call('POST', '/v1/accounts', {
      body: { username: this.options.username, password: this.password },
    });
    await this.login();
  }

  /** Logs in this device (creating it on first login), registers its identity key and publishes its prekeys. */
  async login(): Promise<void> {
    await this.authenticate();
    await this.sessions.publishKeys();
    // A user's only device vouches for itself at once, so contacts can encrypt to it.
    this.approved = await this.trust.ensureVouched();
    this.trustReady ??= Promise.resolve();
    this.keysPublished = true;
  }

  /** A session token for this device (the device is created at its first login); the device record saved. */
  private async authenticate(): Promise<void> {
    await sodiumReady();
    this.device ??= await this.sessions.loadDevice();
    // Prove we hold the identity key we register: sign a fresh server challenge with it.
    const { challenge } = await this.call<{ challenge: string }>('POST', '/v1/sessions/challenge');
    const proof = signLoginProof(this.device.identity, challenge, this.options.username);
    const s = await this.call<{ token: string; expiresAt: number; userId: string; deviceId: string }>('POST', '/v1/sessions', {
      body: {
        username: this.options.username,
        password: this.password,
        device: { ...(this.device.deviceId ? { id: this.device.deviceId } : {}), name: this.options.deviceName ?? 'parley-sdk', publicKey: toB64(this.device.identity.publicKey), proof },
      },
    });
    this.token = s.token;
    this.tokenExpiresAt = s.expiresAt;
    this._userId = s.userId;
    this.device = { ...this.device, deviceId: s.deviceId, userId: s.userId };
    await this.sessions.useDevice(this.device);
  }

  /**
   * The 60-digit safety number of you and `userId`, over the identity keys this client trusts
   * for both users (your own from this device's store, never the server's list of them).
   * Compare it with theirs out of band: if it differs, someone substituted a key. Format it
   * with formatSafetyNumber.
   */
  async safetyNumber(userId: string): Promise<string> {
    await this.readyTrust();
    return this.trust.safetyNumber(userId);
  }

  /**
   * Records that you compared safety numbers with `userId` and they matched. From then on, if
   * their devices are all replaced (a new identity), nothing is sent to them, and sends fail
   * with `identity_unverified`, until you call `acceptIdentity(userId)`.
   */
  async markVerified(userId: string): Promise<void> {
    await this.readyTrust();
    await this.trust.markVerified(userId);
  }

  /** Accepts a contact's changed identity: their current devices are trusted (unverified) and sending resumes. */
  async acceptIdentity(userId: string): Promise<void> {
    await this.readyTrust();
    await this.trust.acceptIdentity(userId);
    this.userDevices.delete(userId);
  }

  /**
   * Approves a new device of your own (after `device_pending`, once the user confirms it is
   * theirs): this device signs its certificate, so your contacts start encrypting to it.
   */
  async approveDevice(deviceId: string): Promise<void> {
    await this.readyTrust();
    await this.trust.approve(deviceId);
  }

  /** Your own devices that wait for approval by one of your devices. */
  async pendingDevices(): Promise<string[]> {
    await this.readyTrust();
    return (await this.trust.pending()).map((d) => d.id);
  }

  /** Whether this device is vouched for by its user (your first device is; later ones once approved). */
  async isApproved(): Promise<boolean> {
    await this.readyTrust();
    if (!this.approved) this.approved = await this.trust.ensureVouched();
    return this.approved;
  }

  /** The username of a user id (asked once per client, then remembered); rejects with code `not_found` when there is none. */
  async username(userId: string): Promise<string> {
    let name = this.usernames.get(userId);
    if (!name) {
      const r = await this.call<{ username: string }>('GET', `/v1/users/${encodeURIComponent(userId)}`, { token: await this.freshToken() });
      name = r.username;
      this.usernames.set(userId, name);
    }
    return name;
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
    if (this.isReady) return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    this.timers.start().catch((err: unknown) => this.failed(err));
    this.socket.open();
    return p;
  }

  /** Closes the connection for good. Unacknowledged sends stay in the outbox for a later connect(). */
  async close(): Promise<void> {
    this.timers.stop();
    this.inbox.flushAcks();
    this.isReady = false;
    this.outbox.disconnected();
    this.outbox.close();
    await this.socket.close();
  }

  /** Encrypts `text` for each of the user's devices (and your other devices) and sends it; resolves on the server's ack, once it is in this device's history. */
  sendText(userId: string, text: string, options: TextOptions = {}): Promise<SendResult> {
    return this.sendContent(userId, false, textContent(text, options));
  }

  /** Encrypts `text` once with your sender key for the group and sends it; resolves on the server's ack, once it is in this device's history. */
  sendGroupText(groupId: string, text: string, options: TextOptions = {}): Promise<SendResult> {
    return this.sendContent(groupId, true, textContent(text, options));
  }

  /**
   * Sends `text` as a reply quoting message `messageId` (its `replyTo`). `conversation`: a group
   * id, a user id (your direct conversation with them), or a direct conversation's id this
   * device has seen (as for every message action below).
   */
  async reply(conversation: string, messageId: string, text: string, options: TextOptions = {}): Promise<SendResult> {
    const content = { ...textContent(text, options), replyTo: checkId(messageId) };
    const { to, group } = await this.route(conversation);
    return this.sendContent(to, group, content);
  }

  /**
   * Replaces the text of your message `messageId` for everyone (an encrypted action with its own
   * seq; receivers apply it only if it comes from the message's sender: 'edit' there, and
   * `client.history` shows the new text with `editedAt`). Rejects with `forbidden` for a message
   * this device holds from someone else.
   */
  async edit(conversation: string, messageId: string, text: string): Promise<SendResult> {
    const edit = { type: 'edit' as const, target: checkId(messageId), text: textContent(text, {}).text };
    const { to, group } = await this.route(conversation);
    await this.checkOwn(conversation, messageId);
    return this.sendContent(to, group, edit);
  }

  /**
   * Deletes your message `messageId` for everyone: an encrypted delete to the conversation
   * (devices that hold the message erase it and emit 'delete'; this device erases it at once),
   * then the server erases the original's ciphertext for devices that have not fetched it
   * (they get a tombstone), which it allows the sending device only, within its window
   * (`erased` false when the window passed or the message is gone already). Rejects with
   * `forbidden` for a message this device holds from someone else.
   */
  async deleteForEveryone(conversation: string, messageId: string): Promise<DeleteResult> {
    const target = checkId(messageId);
    const { to, group } = await this.route(conversation);
    await this.checkOwn(conversation, messageId);
    const r = await this.sendContent(to, group, { type: 'delete', target });
    const original = await this.messageHistory.held(r.conversationId, messageId);
    const erased = original?.from === this.userId ? await this.unsend(r.conversationId, original.seq) : false;
    return { ...r, erased };
  }

  /** Reacts to message `messageId` with `emoji` (an encrypted action: 'reaction' for the other members). */
  react(conversation: string, messageId: string, emoji: string): Promise<SendResult> {
    return this.reaction(conversation, messageId, emoji, false);
  }

  /** Takes back your reaction `emoji` to message `messageId`. */
  unreact(conversation: string, messageId: string, emoji: string): Promise<SendResult> {
    return this.reaction(conversation, messageId, emoji, true);
  }

  private async reaction(conversation: string, messageId: string, emoji: string, remove: boolean): Promise<SendResult> {
    const action = { type: 'reaction' as const, target: checkId(messageId), emoji: checkEmoji(emoji), ...(remove ? { remove: true as const } : {}) };
    const { to, group } = await this.route(conversation);
    return this.sendContent(to, group, action);
  }

  /**
   * A page of this device's history of a conversation, newest first: messages with seq below
   * `before` (default: from the newest), at most `limit` (default 50, at most 500), each with
   * its edits, reactions and deletion applied. Scroll back with `before` = the last page's
   * oldest seq. Holds what this device reported (received and sent) and what another device of
   * yours handed it (sendHistory there), in the message store of `createClient({ messageStore })`.
   * @example const page = await client.history(m.conversationId, { limit: 50 }); const older = await client.history(m.conversationId, { before: page.at(-1)!.seq })
   */
  async history(conversationId: string, options: { before?: number; limit?: number } = {}): Promise<Message[]> {
    const limit = options.limit ?? 50;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 500) throw new ParleyError('invalid', 'limit is a whole number from 1 to 500');
    return this.messageHistory.page(conversationId, { ...(options.before !== undefined ? { before: options.before } : {}), limit });
  }

  /** One message of this device's history as it now stands, or null. */
  message(conversationId: string, messageId: string): Promise<Message | null> {
    return this.messageHistory.message(conversationId, messageId);
  }

  /**
   * Hands this device's history to another device of yours (after you approved it): the whole
   * message store (but disappearing messages) as one archive, encrypted like any file and
   * uploaded (the server sees one opaque file, downloadable by your devices only), its
   * reference and key sent to that device alone over your pairwise session. The device imports
   * it and emits 'history_imported'. Rejects with `untrusted_device` for a device that is not
   * one of yours this device trusts.
   */
  async sendHistory(deviceId: string): Promise<{ messages: number; fileId: string }> {
    await this.readyTrust();
    this.userDevices.delete(this.userId);
    const mine = await this.trust.devices(this.userId, await this.devicesOf(this.userId));
    if (deviceId === this.deviceId || !mine.trusted.some((d) => d.id === deviceId)) throw new ParleyError('untrusted_device', 'not another device of yours that this device trusts');
    await sodiumReady();
    const offer = await this.transfer.pack();
    await this.sendContent(this.userId, false, offer, { forDevice: deviceId });
    return { messages: offer.messages, fileId: offer.file.id };
  }

  /**
   * Sends a file to a user or a group: encrypts it on this device under a fresh key
   * (secretstream, 64 KiB chunks), uploads the ciphertext, lets the conversation's members
   * download it, then sends a message whose encrypted content carries the file's id, key,
   * ciphertext hash, size, name and type. Progress goes to `options.onProgress` and to
   * 'upload_progress' events.
   * @example await alice.sendFile(bobId, bytes, { name: 'cat.png', type: 'image/png' })
   */
  async sendFile(to: string, data: Uint8Array | Blob, options: SendFileOptions): Promise<SendFileResult> {
    await sodiumReady();
    return this.files.send(to, data, options);
  }

  /**
   * Encrypts content for the recipient's (or group's) devices and sends it through the outbox.
   * The one path every send takes. Content in a conversation with a disappearing timer carries
   * it (inside the encryption, for the recipients' devices, and as `expiresAt` for the server).
   */
  private sendContent(to: string, group: boolean, content: Decoded, extra: { forDevice?: string } = {}): Promise<SendResult> {
    if (group) this.knownGroups.add(to);
    const queued = this.sendQueue.then(async () => {
      // Actions carry the timer too (for the server's erasure), not inside: they go with their message.
      const timer = isContent(content) || isAction(content) ? await this.settings.forSend(to, group) : null;
      const body = timer && isContent(content) ? { ...content, timer } : content;
      return { sent: this.outbox.enqueue(to, group, encodeContent(body), { ...extra, ...(timer ? { timer } : {}) }), body, timer };
    });
    this.sendQueue = queued.catch(() => undefined);
    return queued.then(async (q) => {
      const r = await q.sent;
      // It was sent whatever the store says: a failure here is reported, not thrown (a retry would send it twice).
      await this.stored(to, group, q.body, q.timer, r).catch((err: unknown) => this.failed(err));
      return r;
    });
  }

  /** The server stored a send: a group send's key holders are known. */
  private acknowledged(entry: OutboxEntry): void {
    this.envelopes.acknowledged(entry);
  }

  /** Our send was stored: a message goes into the history (a disappearing one starts its countdown), an action is applied to it. */
  private async stored(to: string, group: boolean, body: Decoded, timer: number | null, r: SendResult): Promise<void> {
    const meta = { conversationId: r.conversationId, seq: r.seq, id: r.id, sentAt: r.sentAt, from: this.userId, fromDevice: this.deviceId! };
    if (!group) this.received.sentTo(r.conversationId, to);
    if (isAction(body)) {
      await this.messageHistory.addAction({ ...meta, action: body }, timer !== null);
      return;
    }
    if (!isContent(body)) return;
    if (body.timer) await this.timers.track(r, body.timer, true);
    await this.messageHistory.addMessage({ ...meta, ...(group ? { groupId: to } : { peer: to }), ...body });
  }

  /** Where a message action goes: to the group, or to the other user of a direct conversation (named by its id or that user's id). */
  private async route(conversation: string): Promise<{ to: string; group: boolean }> {
    // A direct conversation this device has seen names its peer: no need to ask the server whether it is a group.
    const peer = await this.received.peerOf(conversation);
    if (peer) return { to: peer, group: false };
    return { to: conversation, group: await this.isGroup(conversation) };
  }

  /** Refuses an edit or delete of a message this device holds from someone else (receivers would ignore it). */
  private async checkOwn(conversationId: string, messageId: string): Promise<void> {
    const held = await this.messageHistory.held(conversationId, messageId);
    if (held && held.from !== this.userId) throw new ParleyError('forbidden', 'only its sender can edit or delete a message');
  }

  /** The server's erasure of our message's ciphertext: false when its window passed or it is gone (or was sent from another device). */
  private async unsend(conversationId: string, seq: number): Promise<boolean> {
    try {
      await this.account.unsend(conversationId, seq);
      return true;
    } catch (err) {
      if (err instanceof ParleyError && (err.code === 'not_found' || err.code === 'forbidden')) return false;
      throw err;
    }
  }

  /**
   * Another device offered its history: imported only from a device of this user that this
   * device trusts, sent to this device alone over the pairwise session (never in a group).
   * The download and import run beside the inbox; 'history_imported' reports them.
   */
  private historyOffered(f: MsgFrame, offer: HistoryOffer): void {
    if (f.from !== this.userId || f.groupId || !f.fromDevice || f.fromDevice === this.deviceId) return;
    const fromDevice = f.fromDevice;
    void (async () => {
      const mine = await this.trust.devices(this.userId, await this.devicesOf(this.userId));
      if (!mine.trusted.some((d) => d.id === fromDevice)) return;
      const messages = await this.transfer.receive(offer);
      this.emit('history_imported', { fromDevice, messages });
    })().catch((err: unknown) => this.failed(err));
  }

  /** Whether `id` is a group of ours (else it is taken for a user id). */
  private async isGroup(id: string): Promise<boolean> {
    if (this.knownGroups.has(id)) return true;
    if (this.userDevices.has(id)) return false; // a user this client has encrypted to
    if (await this.received.peerOf(id)) return false; // a direct conversation this device has seen
    const found = await this.groups.get(id).then(
      () => true,
      (err: unknown) => {
        if (err instanceof ParleyError && err.code === 'not_found') return false;
        throw err;
      },
    );
    if (found) this.knownGroups.add(id);
    return found;
  }

  /**
   * Creates a group you own with these members (user ids). Its name is sealed under a new key
   * of the group's (the server stores opaque text); each member device gets the key with the
   * group's `created` message, encrypted over your pairwise session with it.
   */
  async createGroup(options: { name: string; members: string[] }): Promise<{ id: string }> {
    await this.mayEncrypt();
    return this.names.create(options.name, options.members);
  }

  /** The groups you are a member of (names opened on this device; '' where its key has not arrived). */
  async listGroups(): Promise<GroupSummary[]> {
    return Promise.all((await this.groups.list()).map(async (g) => ({ ...g, name: await this.openName(g.id, g.name) })));
  }

  /** A group you are a member of, with its members and roles. */
  async getGroup(groupId: string): Promise<GroupInfo> {
    const g = await this.groups.get(groupId);
    return { ...g, name: await this.openName(groupId, g.name) };
  }

  /** Adds a member (admins only); they receive what is sent from now on, and the group's key with the `member_added` message. */
  addMember(groupId: string, userId: string): Promise<void> {
    return this.names.add(groupId, userId);
  }

  /**
   * Removes a member (admins only); they receive nothing sent afterwards, every member's sender
   * key is replaced, and the group's name key too (the name sealed again, under a key the
   * removed member never gets).
   */
  async removeMember(groupId: string, userId: string): Promise<void> {
    await this.groups.removeMember(groupId, userId);
    await this.names.rotate(groupId);
  }

  leaveGroup(groupId: string): Promise<void> {
    return this.groups.leave(groupId);
  }

  /** Renames the group (admins): the name is sealed under the group's key (a new one, given to every member device, if this device has none). */
  renameGroup(groupId: string, name: string): Promise<void> {
    return this.names.rename(groupId, name);
  }

  /** A group name as the server holds it, opened on this device ('' until its key arrives). */
  private openName(groupId: string, name: string): Promise<string> {
    return this.names.open(groupId, name);
  }

  /** Admins toggle admin/member; the owner passes ownership on with 'owner'. */
  setGroupRole(groupId: string, userId: string, role: GroupRole): Promise<void> {
    return this.groups.setRole(groupId, userId, role);
  }

  /** Deletes the group (owner only). */
  deleteGroup(groupId: string): Promise<void> {
    return this.groups.delete(groupId);
  }

  /** Per-member delivered/read seqs in a group, and the aggregates. */
  groupReceipts(groupId: string): Promise<GroupReceipts> {
    return this.groups.receipts(groupId);
  }

  /**
   * Marks everything up to `seq` in the conversation read; the sender's devices get a 'read'
   * receipt. Disappearing messages up to `seq` start their countdown.
   */
  async markRead(conversationId: string, seq: number): Promise<void> {
    this.inbox.markRead(conversationId, seq);
    this.emit('conversation', { conversationId, seq, cause: 'read' });
    await this.timers.read(conversationId, seq);
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

  /**
   * The inbox: your conversations, most recently active first, with this device's cursors
   * and the unread count (over all your devices); `cursor` pages on. Keep it current with the
   * 'conversation' event instead of polling.
   */
  conversations(options: { limit?: number; cursor?: string } = {}): Promise<ConversationPage> {
    return this.account.conversations(options);
  }

  /**
   * Blocks a user: their messages to you are acknowledged to them as usual but reach none of
   * your devices, and your presence, typing and receipts are hidden from them. They learn nothing.
   * Their direct messages the server keeps from you; their group messages (one ciphertext for
   * every member) it delivers, and this client drops them: no 'message', no actions, nothing in
   * the history. Your other devices drop them too once they have reconnected (each fetches the
   * list again on every connection).
   */
  block(userId: string): Promise<void> {
    return this.blockList.block(userId);
  }

  /** Unblocks a user: their messages sent from now on reach you (those sent meanwhile never do). */
  unblock(userId: string): Promise<void> {
    return this.blockList.unblock(userId);
  }

  /** The users you block, newest first (this client's list is brought up to date with it). */
  blocks(): Promise<BlockedUser[]> {
    return this.blockList.list();
  }

  /** Reports a user to the operator, with the decrypted messages you choose to attach (nothing else is disclosed); the report's id. */
  report(report: ReportInput): Promise<string> {
    return this.account.report(report);
  }

  /** Changes the password; your other devices are logged out (they log in again with the new one). */
  async changePassword(current: string, next: string): Promise<void> {
    await this.account.changePassword(current, next);
    this.password = next;
  }

  /** Your devices, with their names and when each was last seen. */
  listDevices(): Promise<AccountDevice[]> {
    return this.account.devices();
  }

  /** Deletes the account for good: devices, keys, memberships, undelivered messages and uploads; groups you own are handed on. */
  async deleteAccount(password: string): Promise<void> {
    await this.account.deleteAccount(password);
    await this.close();
  }

  /**
   * Where this device's pushes go (after login; the device only, with its own token): a Web
   * Push subscription (`subscription.toJSON()` of PushManager.subscribe with
   * `applicationServerKey: await client.vapidPublicKey()`), or a token for the app's push relay.
   * A push carries no plaintext: at most this device's own ciphertext, for handlePush.
   */
  async registerPush(target: PushTarget): Promise<void> {
    const token = await this.freshToken();
    await this.call('PUT', `/v1/devices/${this.deviceId}/push`, { body: target, token });
  }

  /** Stops pushes to this device. */
  async unregisterPush(): Promise<void> {
    const token = await this.freshToken();
    await this.call('DELETE', `/v1/devices/${this.deviceId}/push`, { token });
  }

  /** The server's VAPID public key (base64url), the `applicationServerKey` for PushManager.subscribe. */
  async vapidPublicKey(): Promise<string> {
    return (await this.call<{ publicKey: string }>('GET', '/v1/push/vapid', { token: await this.freshToken() })).publicKey;
  }

  /**
   * No pushes for this conversation until `until` (epoch ms; default: until unmute). Messages
   * still arrive. The server learns which conversations you mute and until when.
   */
  async mute(conversationId: string, until?: number): Promise<void> {
    await this.call('PUT', `/v1/conversations/${encodeURIComponent(conversationId)}/mute`, { body: { until: until ?? null }, token: await this.freshToken() });
  }

  async unmute(conversationId: string): Promise<void> {
    await this.call('DELETE', `/v1/conversations/${encodeURIComponent(conversationId)}/mute`, { token: await this.freshToken() });
  }

  /**
   * For a service worker or a background handler: the message a push carries (the payload's
   * JSON text, or the parsed object), decrypted with this device's stores, without a
   * connection or a login; null for a wake-up push, a group change, one already reported, or
   * one it cannot decrypt (the sync brings it then). The message is reported here only:
   * when the sync brings it again, to this client or any other over the same key store, it
   * is acknowledged without a 'message' event (its keys were used once). A timer change it
   * carried is applied (and reported as 'disappearing' here).
   * @example self.addEventListener('push', (e) => e.waitUntil(client.handlePush(e.data.text()).then(show)))
   */
  async handlePush(payload: string | PushPayload): Promise<Message | null> {
    const f = pushedMessage(payload);
    if (!f || !(await this.storedDevice())) return null;
    return this.inbox.outOfBand(f, async () => {
      if (await this.pushed.has(f.conversationId, f.seq)) return null;
      let m: Message | null;
      try {
        m = await this.received.open(f);
      } catch {
        return null; // nothing was used up: the sync tries again, and reports what fails
      }
      await this.pushed.add(f.conversationId, f.seq);
      return m;
    });
  }

  /**
   * Sets a conversation's disappearing timer (seconds, 1 s to 4 weeks) or turns it off (null),
   * for every member: an end-to-end-encrypted control message to the conversation, which every
   * member's device applies (a 'disappearing' event everywhere, yours included once the
   * server stored it). From then on each message sent there is erased by the server at send
   * time + timer, and by each device that long after it was read there. `conversation`: a
   * group id, a user id (your direct conversation with them), or a direct conversation's id
   * this client has seen.
   */
  async setDisappearing(conversation: string, seconds: number | null): Promise<void> {
    if (seconds !== null && !validTimer(seconds)) throw new ParleyError('invalid', `a disappearing timer is whole seconds from 1 to ${MAX_TIMER_SECONDS}`);
    const { to, group } = await this.route(conversation);
    const peer = group ? null : to;
    const r = await this.sendContent(to, group, { type: 'disappearing', seconds, ...(peer ? { to: peer } : {}) });
    await this.received.apply({ conversationId: r.conversationId, seconds, by: this.userId, seq: r.seq, peer });
  }

  /** A conversation's disappearing timer in seconds (null: off), as this device last applied it. */
  async disappearingTimer(conversationId: string): Promise<number | null> {
    return (await this.settings.get(conversationId))?.seconds ?? null;
  }

  /** A control message (inner kind CONTROL) to one device of `userId`, over the pairwise session. */
  private sendControl(userId: string, deviceId: string, payload: Uint8Array): void {
    void this.outbox.enqueue(userId, false, payload, { controlFor: deviceId }).catch((e: ParleyError) => this.emit('error', e));
  }

  /** The frame for an outbox entry, once this device may encrypt; a disappearing message's `expiresAt` counts from now. */
  private async encryptFor(entry: OutboxEntry): Promise<SendFrame> {
    await this.mayEncrypt();
    const frame = await this.envelopes.seal(entry);
    return entry.timer ? { ...frame, expiresAt: this.clock.now() + entry.timer * 1000 } : frame;
  }

  /** This device as the key store knows it, for work without a login (handlePush); false before its first login. */
  private async storedDevice(): Promise<boolean> {
    if (this.device?.deviceId && this._userId) return true;
    const d = await this.sessions.store.device();
    if (!d?.deviceId || !d.userId) return false;
    await this.sessions.useDevice(d);
    this.device = d;
    this._userId = d.userId;
    this.keysPublished = true; // by the client that logged this device in
    return true;
  }

  private failed(err: unknown): void {
    this.emit('error', err instanceof ParleyError ? err : new ParleyError('internal', String(err)));
  }

  /** Sending needs this device's trust set up, and its approval by its user. */
  private async mayEncrypt(): Promise<void> {
    if (!(await this.isApproved())) {
      throw new ParleyError('not_approved', 'this device waits for approval by another of your devices (approveDevice there)');
    }
  }

  /** Reports an identity change once, whether trust (new devices) or a session (a new key) noticed it first. */
  private identityChanged(e: ClientEvents['identity_changed']): void {
    const k = `${e.userId}|${e.deviceId}|${e.currentKey}`;
    if (this.identityReported.has(k)) return;
    this.identityReported.add(k);
    this.emit('identity_changed', e);
  }

  /** Once per client: logged in (login sets up this device's trust: its vouch, its user id in its sessions). */
  private readyTrust(): Promise<void> {
    this.trustReady ??= (async () => {
      await this.freshToken();
    })().catch((err: unknown) => {
      this.trustReady = null;
      throw err;
    });
    return this.trustReady;
  }

  private async devicesOf(userId: string): Promise<ListedDevice[]> {
    const cached = this.userDevices.get(userId);
    if (cached) return cached;
    const r = await this.call<{ devices: ListedDevice[] }>('GET', `/v1/users/${userId}/devices`, {
      token: await this.freshToken(),
    });
    this.userDevices.set(userId, r.devices);
    return r.devices;
  }

  private baseUrl(): string {
    return this.gateways.current();
  }

  /** A REST call to the current gateway; when it cannot be reached, the next ones are tried once each. */
  private async call<T>(method: string, path: string, options: { body?: unknown; token?: string } = {}): Promise<T> {
    for (let tried = 1; ; tried++) {
      try {
        return await request<T>(this.baseUrl(), method, path, options);
      } catch (err) {
        if (!(err instanceof ParleyError) || err.status !== undefined || tried >= this.gateways.count) throw err;
        this.gateways.next();
      }
    }
  }

  /**
   * A valid token. Once this device's keys are out, a new token is all it needs: a full login
   * would wait for the session manager, which may be what is asking (a decryption that lists
   * the sender's devices), and neither would go on.
   */
  private async freshToken(): Promise<string> {
    if (!this.token || this.tokenExpiresAt - this.clock.now() < 60_000) await (this.keysPublished ? this.authenticate() : this.login());
    return this.token!;
  }

  /** The connection closed: sends go out again after the next `ready`; the app hears of it if it had been connected. */
  private onClose(ev: { code: number; reason: string; wasReady: boolean; willReconnect: boolean }): void {
    this.isReady = false;
    this.outbox.disconnected();
    if (ev.wasReady) this.emit('disconnected', { code: ev.code, reason: ev.reason, willReconnect: ev.willReconnect });
  }

  private rejectWaiters(err: unknown): void {
    for (const w of this.connectWaiters.splice(0)) w.reject(err);
  }

  private sendFrame(frame: ClientFrame): boolean {
    return this.socket.send(JSON.stringify(frame));
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
        this.socket.markReady();
        this.maxPayloadBytes = f.maxPayloadBytes;
        this.blockList.reconnected();
        if (this.presenceWatch.size > 0) this.sendFrame({ type: 'presence.subscribe', users: [...this.presenceWatch] });
        this.emit('connected', { deviceId: f.deviceId });
        for (const w of this.connectWaiters.splice(0)) w.resolve();
        this.inbox.flushReads();
        this.inbox.flushAcks();
        void this.outbox.pump();
        return;
      case 'sent':
        this.outbox.onSent(f);
        this.emit('conversation', { conversationId: f.conversationId, seq: f.seq, cause: 'sent', at: f.sentAt });
        return;
      case 'msg':
        this.inbox.onMessage(f);
        return;
      case 'group_receipt': {
        const r = this.inbox.groupReceipt(f);
        if (r) this.emit('group_receipt', r);
        return;
      }
      case 'caught_up':
        this.inbox.after(() => this.emit('caught_up', {}));
        return;
      case 'receipt': {
        const r = this.inbox.receipt(f);
        if (r) this.emit('receipt', r);
        // Read on another of our devices: disappearing messages count down here too.
        if (r?.kind === 'read' && r.by === this._userId) {
          this.emit('conversation', { conversationId: r.conversationId, seq: r.seq, cause: 'read' });
          this.timers.read(r.conversationId, r.seq).catch((err: unknown) => this.failed(err));
        }
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
      case 'prekeys_low':
        if (f.deviceId === this.device?.deviceId) {
          this.sessions.topUpPrekeys().catch((err: unknown) => this.emit('error', err instanceof ParleyError ? err : new ParleyError('unavailable', String(err))));
        }
        return;
      case 'pong':
        return;
      case 'expired':
        this.inbox.onExpired(f);
        return;
      default:
        assertNever(f);
    }
  }

  /** A message not seen before (the inbox dedupes and orders): a group change, or content for the app. */
  private async onMessage(f: MsgFrame): Promise<void> {
    await this.readyTrust().catch(() => {}); // (failures surface as the decryption's own)
    if (f.system) return this.onGroupEvent({ ...f.system, groupId: f.conversationId, seq: f.seq, by: f.from, sentAt: f.sentAt }, f.key);
    // Blocks made on another device since this connection began apply from here (a failed fetch leaves the list as it was).
    if (f.groupId) await this.blockList.current().catch((err: unknown) => this.failed(err));
    try {
      const m = await this.received.open(f);
      if (m) {
        this.emit('message', m);
        this.emit('conversation', { conversationId: m.conversationId, seq: m.seq, cause: 'message', at: m.sentAt });
      }
    } catch (err) {
      // `details.reason` is the e2e code (no_session, auth_failed, unknown_sender_key, …); a session_reset or sender key request follows.
      const reason = err instanceof ParleyError ? err.code : 'malformed';
      this.emit('error', new ParleyError('undecryptable', `message ${f.conversationId}#${f.seq} could not be decrypted: ${(err as Error).message}`, undefined, { reason }));
    }
  }

  /**
   * A group change, in the group's order. When someone else left or was removed, our sender
   * key for the group is replaced, so that what we send from now on is unreadable to them; the
   * next message distributes the new key to the remaining members only.
   */
  private async onGroupEvent(e: GroupEvent, key?: string): Promise<void> {
    this.groups.forget(e.groupId); // the member list may have changed
    this.knownGroups.add(e.groupId);
    // The group's name key, from the device that made the change, for this group only.
    if (key && e.device) {
      await this.sessions.decrypt(e.by, e.device, key, e.groupId).catch((err: unknown) => this.emit('error', err instanceof ParleyError ? err : new ParleyError('malformed', String(err))));
    }
    const { device: _device, ...event } = e;
    if (event.name !== undefined) event.name = await this.openName(e.groupId, event.name);
    if (e.kind === 'member_left' && !(e.users ?? []).includes(this.userId)) await this.names.memberLeft(e).catch(() => {});
    const departed = e.kind === 'member_removed' || e.kind === 'member_left';
    if (departed && !(e.users ?? []).includes(this.userId)) {
      await this.envelopes.departed(e.groupId, e.users ?? []).catch((err: unknown) => this.emit('error', new ParleyError('internal', `sender key rotation failed: ${String(err)}`)));
    }
    this.emit('group', event);
  }

  private onError(f: ErrorFrame): void {
    if (!this.outbox.onError(f)) this.emit('error', new ParleyError(f.code, f.message, undefined, f.details));
  }
}

/** Text content with its options checked (mentions: user ids, at most MAX_MENTIONS). */
function textContent(text: string, options: TextOptions): Content {
  if (typeof text !== 'string') throw new ParleyError('invalid', 'text must be a string');
  if (options.mentions === undefined) return { text };
  try {
    return { text, mentions: mentions(options.mentions) };
  } catch {
    throw new ParleyError('invalid', 'mentions are user ids');
  }
}

function checkId(id: string): string {
  if (!validId(id)) throw new ParleyError('invalid', 'not a message id');
  return id;
}

function checkEmoji(emoji: string): string {
  if (!validEmoji(emoji)) throw new ParleyError('invalid', 'a reaction is a short non-empty string (an emoji)');
  return emoji;
}

export function createClient(options: ClientOptions): ParleyClient {
  return new ParleyClient(options);
}
