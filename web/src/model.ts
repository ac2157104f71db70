// The web client's state: one signed-in device's conversations, messages, receipts, typing and presence, kept current from the SDK's events.
import {
  createClient,
  type GroupEvent,
  type GroupRole,
  type Message,
  type ParleyClient,
  type Receipt,
  type SendResult,
} from '../../client-sdk/index.js';
import { deviceLock, openDevice, type Device } from './device.js';
import { type Credentials, forgetCredentials, saveCredentials } from './vault.js';

/** A message as the screen shows it: a stored one, or one of ours still in the outbox. */
export interface ShownMessage extends Message {
  /** Ours and not yet acknowledged by the server (it waits in the outbox while offline). */
  pending?: boolean;
  /** Ours, refused by the server (e.g. the recipient's identity changed): the reason. */
  failed?: string;
}

export interface Conversation {
  /** The conversation id; for a direct chat not yet written in, `user:<peer id>`. */
  id: string;
  kind: 'direct' | 'group';
  /** Direct: the other user (absent for a note to self). */
  peer?: string;
  title: string;
  lastSeq: number;
  lastActivityAt: number;
  unread: number;
  /** Direct: how far the peer received / read (their receipts). Group: every member (the aggregate). */
  delivered: number;
  read: number;
  role?: GroupRole;
}

export type ConnectionState = 'connecting' | 'online' | 'reconnecting' | 'offline';

export interface Upload {
  conversationId: string;
  name: string;
  loaded: number;
  total: number;
}

type Listener = () => void;

/** A direct conversation the user opened before anything was sent in it. */
const draftId = (peer: string) => `user:${peer}`;

const TYPING_IDLE_MS = 3000;

/**
 * The chat state of one device. Components read its fields and re-render on `subscribe`;
 * every change goes through the SDK (nothing here talks to the server by itself).
 */
export class ChatModel {
  readonly conversations = new Map<string, Conversation>();
  readonly messages = new Map<string, ShownMessage[]>();
  readonly typing = new Map<string, Set<string>>();
  readonly presence = new Map<string, { online: boolean; lastSeen: number | null }>();
  readonly names = new Map<string, string>();
  readonly uploads = new Map<string, Upload>();
  connection: ConnectionState = 'connecting';
  transport: string | null = null;
  /** The conversation on screen, whose messages are marked read as they arrive. */
  openId: string | null = null;
  lastError: string | null = null;
  private readonly listeners = new Set<Listener>();
  /** The highest seq this device got per conversation (messages and actions, live or synced). */
  private readonly seen = new Map<string, number>();
  /** How far this client marked each conversation read (a read is sent once per seq). */
  private readonly readMarks = new Map<string, number>();
  private typingTimer: ReturnType<typeof setTimeout> | null = null;
  /** The conversation a 'typing: true' was last sent for, and when (null: none on). */
  private typingSent: { conversationId: string; at: number } | null = null;
  private pendingCounter = 0;

  private constructor(
    readonly client: ParleyClient,
    readonly credentials: Credentials,
    private readonly device: Device,
    private readonly release: () => void,
  ) {}

  /**
   * Signs in (registering first when `register`), with this browser's device (keys and history
   * in IndexedDB), connects, and loads the chat list. The credentials are kept sealed for reloads.
   */
  static async start(credentials: Credentials, options: { register?: boolean; onWait?: () => void } = {}): Promise<ChatModel> {
    const release = await holdLock(deviceLock(credentials.username), options.onWait);
    let device: Device;
    try {
      device = await openDevice(credentials.username);
    } catch (err) {
      release();
      throw err;
    }
    return ChatModel.signIn(credentials, device, release, options.register === true);
  }

  private static async signIn(credentials: Credentials, device: Device, release: () => void, register: boolean): Promise<ChatModel> {
    const client = createClient({
      url: location.origin,
      username: credentials.username,
      password: credentials.password,
      deviceName: deviceName(),
      keyStore: device.keyStore,
      messageStore: device.messageStore,
      historyKey: device.historyKey,
      // A person is waiting: after a network change, try again within 5 s at most.
      reconnect: { maxDelayMs: 5000 },
    });
    const model = new ChatModel(client, credentials, device, release);
    try {
      if (register) await client.register();
      else await client.login();
    } catch (err) {
      await device.close();
      release();
      throw err;
    }
    await saveCredentials(credentials);
    model.listen();
    await client.connect();
    await model.loadConversations();
    return model;
  }

  get me(): string {
    return this.client.userId;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  /** Chats, most recently active first. */
  sortedConversations(): Conversation[] {
    return [...this.conversations.values()].sort((a, b) => b.lastActivityAt - a.lastActivityAt);
  }

  /** A username for a user id (fetched once, shown as a short id meanwhile). */
  name(userId: string): string {
    const known = this.names.get(userId);
    if (known) return known;
    this.names.set(userId, `user ${userId.slice(0, 6)}`);
    void this.client
      .username(userId)
      .then((n) => {
        this.names.set(userId, n);
        for (const c of this.conversations.values()) if (c.peer === userId) c.title = n;
        this.changed();
      })
      .catch(() => undefined);
    return this.names.get(userId)!;
  }

  private listen(): void {
    const c = this.client;
    c.on('connected', () => {
      this.connection = 'online';
      this.changed();
    });
    c.on('disconnected', (d) => {
      this.connection = d.willReconnect ? 'reconnecting' : 'offline';
      this.changed();
    });
    c.on('transport', (t) => {
      this.transport = t;
      this.changed();
    });
    c.on('message', (m) => this.onMessage(m));
    c.on('conversation', (ch) => {
      const conv = this.conversations.get(ch.conversationId);
      if (!conv) return void this.loadConversations();
      conv.lastSeq = Math.max(conv.lastSeq, ch.seq);
      if (ch.cause !== 'read') this.seen.set(ch.conversationId, Math.max(this.seen.get(ch.conversationId) ?? 0, ch.seq));
      if (ch.at) conv.lastActivityAt = Math.max(conv.lastActivityAt, ch.at);
      if (ch.cause === 'read') conv.unread = 0;
      this.changed();
      // A reaction or an edit moves the conversation too: on screen, it is read at once.
      if (ch.cause === 'message' && this.openId === ch.conversationId) void this.markOpenRead();
    });
    c.on('receipt', (r) => this.onReceipt(r));
    c.on('group_receipt', (r) => {
      const conv = this.conversations.get(r.groupId);
      if (!conv) return;
      conv.delivered = Math.max(conv.delivered, r.delivered);
      conv.read = Math.max(conv.read, r.read);
      this.changed();
    });
    c.on('typing', (t) => {
      if (t.from === this.me) return;
      const set = this.typing.get(t.conversationId) ?? new Set<string>();
      if (t.active) set.add(t.from);
      else set.delete(t.from);
      this.typing.set(t.conversationId, set);
      this.changed();
    });
    c.on('presence', (p) => {
      this.presence.set(p.userId, { online: p.online, lastSeen: p.lastSeen });
      this.changed();
    });
    c.on('group', (e) => this.onGroup(e));
    c.on('edit', (e) => {
      this.replace(e.message);
      this.saw(e.conversationId, e.seq);
    });
    c.on('delete', (e) => {
      if (e.message) this.replace(e.message);
      this.saw(e.conversationId, e.seq);
    });
    c.on('reaction', (e) => {
      if (e.message) this.replace(e.message);
      this.saw(e.conversationId, e.seq);
    });
    c.on('expire', (e) => {
      const list = this.messages.get(e.conversationId);
      if (list) this.messages.set(e.conversationId, list.filter((m) => m.id !== e.id));
      this.changed();
    });
    c.on('error', (err) => {
      this.lastError = err.message;
      this.changed();
    });
  }

  /** The inbox from the server, group names opened with the SDK. */
  async loadConversations(): Promise<void> {
    const groups = new Map((await this.client.listGroups()).map((g) => [g.id, g]));
    let cursor: string | undefined;
    do {
      const page = await this.client.conversations({ limit: 100, ...(cursor ? { cursor } : {}) });
      for (const s of page.conversations) {
        const old = this.conversations.get(s.id);
        const group = groups.get(s.id);
        this.conversations.set(s.id, {
          id: s.id,
          kind: s.kind,
          ...(s.peer ? { peer: s.peer } : {}),
          title: s.kind === 'group' ? (group?.name ?? 'Group') : s.peer ? this.name(s.peer) : 'Note to self',
          lastSeq: s.lastSeq,
          lastActivityAt: s.lastActivityAt,
          unread: this.openId === s.id ? 0 : s.unread,
          delivered: old?.delivered ?? 0,
          read: old?.read ?? 0,
          ...(group ? { role: group.role } : {}),
        });
        if (s.peer) this.client.subscribePresence([s.peer]);
        if (s.kind === 'group' && !old) void this.loadGroupReceipts(s.id);
      }
      cursor = page.cursor;
    } while (cursor);
    this.changed();
  }

  private async loadGroupReceipts(groupId: string): Promise<void> {
    const r = await this.client.groupReceipts(groupId).catch(() => null);
    const conv = this.conversations.get(groupId);
    if (!r || !conv) return;
    conv.delivered = Math.max(conv.delivered, r.delivered);
    conv.read = Math.max(conv.read, r.read);
    this.changed();
  }

  /** Opens a chat: its history from this device's store, then it is marked read. */
  async open(id: string): Promise<void> {
    this.openId = id;
    if (!this.messages.has(id) && !id.startsWith('user:')) {
      const page = await this.client.history(id, { limit: 100 });
      const live = this.messages.get(id) ?? [];
      const held = new Set(page.map((m) => m.id));
      this.messages.set(id, [...page.reverse(), ...live.filter((m) => !held.has(m.id))]);
    }
    this.changed();
    await this.markOpenRead();
  }

  close(): void {
    this.openId = null;
    this.changed();
  }

  /** Starts (or finds) a direct chat with a username. */
  async startDirect(username: string): Promise<string> {
    const peer = await this.client.findUser(username.trim());
    this.names.set(peer, username.trim());
    const existing = [...this.conversations.values()].find((c) => c.kind === 'direct' && c.peer === peer);
    if (existing) return existing.id;
    const id = draftId(peer);
    this.conversations.set(id, { id, kind: 'direct', peer, title: username.trim(), lastSeq: 0, lastActivityAt: Date.now(), unread: 0, delivered: 0, read: 0 });
    this.client.subscribePresence([peer]);
    this.changed();
    return id;
  }

  async createGroup(name: string, usernames: string[]): Promise<string> {
    const members = await Promise.all(usernames.map((u) => this.client.findUser(u)));
    const { id } = await this.client.createGroup({ name, members });
    await this.loadConversations();
    return id;
  }

  /** Sends text (or a reply) in a chat; shown at once as pending, then with its seq. Returns the chat's id (a draft gets its real one). */
  async sendText(conversationId: string, text: string, replyTo?: string): Promise<string> {
    const conv = this.conversations.get(conversationId);
    if (!conv) throw new Error('no such chat');
    const tempId = `pending-${++this.pendingCounter}`;
    const shown: ShownMessage = { id: tempId, from: this.me, fromDevice: '', conversationId, seq: Number.MAX_SAFE_INTEGER, text, sentAt: Date.now(), pending: true, ...(replyTo ? { replyTo } : {}) };
    this.append(conversationId, shown);
    this.changed();
    this.setTyping(conversationId, false);
    let r: SendResult;
    try {
      if (replyTo) r = await this.client.reply(conversationId, replyTo, text);
      else if (conv.kind === 'group') r = await this.client.sendGroupText(conv.id, text);
      else r = await this.client.sendText(conv.peer ?? this.me, text);
    } catch (err) {
      this.swap(conversationId, shown, { ...shown, pending: false, failed: (err as Error).message });
      this.changed();
      throw err;
    }
    return this.sent(conversationId, shown, r);
  }

  /** Sends a file; its upload's progress is in `uploads` under the returned key meanwhile. */
  async sendFile(conversationId: string, file: File): Promise<string> {
    const conv = this.conversations.get(conversationId);
    if (!conv) throw new Error('no such chat');
    const key = `${conversationId}:${++this.pendingCounter}`;
    this.uploads.set(key, { conversationId, name: file.name, loaded: 0, total: file.size });
    this.changed();
    try {
      const to = conv.kind === 'group' ? conv.id : (conv.peer ?? this.me);
      const bytes = new Uint8Array(await file.arrayBuffer());
      const r = await this.client.sendFile(to, bytes, {
        name: file.name,
        type: file.type,
        onProgress: (p) => {
          const u = this.uploads.get(key);
          if (!u) return;
          u.loaded = p.loaded;
          u.total = p.total;
          this.changed();
        },
      });
      const real = r.conversationId;
      this.adopt(conversationId, real);
      const m = await this.client.message(real, r.id);
      if (m) this.append(real, m);
      return real;
    } finally {
      this.uploads.delete(key);
      this.changed();
    }
  }

  private sent(conversationId: string, shown: ShownMessage, r: SendResult): string {
    const real = r.conversationId;
    this.adopt(conversationId, real);
    const { pending: _pending, ...rest } = shown;
    this.swap(real, shown, { ...rest, id: r.id, seq: r.seq, sentAt: r.sentAt, conversationId: real });
    this.messages.get(real)?.sort((a, b) => a.seq - b.seq);
    const conv = this.conversations.get(real);
    if (conv) {
      conv.lastSeq = Math.max(conv.lastSeq, r.seq);
      conv.lastActivityAt = Math.max(conv.lastActivityAt, r.sentAt);
    }
    this.changed();
    if (this.openId === real) void this.markOpenRead();
    return real;
  }

  /** A draft direct chat got its conversation id with its first message: move it there. */
  private adopt(from: string, to: string): void {
    if (from === to) return;
    const draft = this.conversations.get(from);
    if (draft) {
      this.conversations.delete(from);
      const existing = this.conversations.get(to);
      this.conversations.set(to, existing ?? { ...draft, id: to });
    }
    const moved = this.messages.get(from) ?? [];
    this.messages.delete(from);
    this.messages.set(to, [...(this.messages.get(to) ?? []), ...moved]);
    if (this.openId === from) this.openId = to;
  }

  async edit(m: ShownMessage, text: string): Promise<void> {
    await this.client.edit(m.conversationId, m.id, text);
    const now = await this.client.message(m.conversationId, m.id);
    if (now) this.replace(now);
  }

  async deleteForEveryone(m: ShownMessage): Promise<void> {
    await this.client.deleteForEveryone(m.conversationId, m.id);
    const now = await this.client.message(m.conversationId, m.id);
    this.replace(now ?? { ...m, text: '', deleted: true });
  }

  async toggleReaction(m: ShownMessage, emoji: string): Promise<void> {
    const mine = m.reactions?.find((r) => r.emoji === emoji)?.users.includes(this.me);
    if (mine) await this.client.unreact(m.conversationId, m.id, emoji);
    else await this.client.react(m.conversationId, m.id, emoji);
    const now = await this.client.message(m.conversationId, m.id);
    if (now) this.replace(now);
  }

  /** Typing indicator: on while the user types, off after a pause or a send. */
  setTyping(conversationId: string, active: boolean): void {
    if (conversationId.startsWith('user:')) return;
    if (this.typingTimer) clearTimeout(this.typingTimer);
    this.typingTimer = null;
    // One frame when typing starts (again at most every TYPING_IDLE_MS while it goes on), one when it stops: not one per key.
    if (this.typingSent && this.typingSent.conversationId !== conversationId) {
      this.client.setTyping(this.typingSent.conversationId, false); // typing moved to another chat
      this.typingSent = null;
    }
    const now = Date.now();
    const on = this.typingSent?.conversationId === conversationId;
    if (active && (!on || now - this.typingSent!.at >= TYPING_IDLE_MS)) {
      this.client.setTyping(conversationId, true);
      this.typingSent = { conversationId, at: now };
    } else if (!active && on) {
      this.client.setTyping(conversationId, false);
      this.typingSent = null;
    }
    if (active) this.typingTimer = setTimeout(() => this.setTyping(conversationId, false), TYPING_IDLE_MS);
  }

  async markOpenRead(): Promise<void> {
    const id = this.openId;
    if (!id || id.startsWith('user:') || document.visibilityState !== 'visible') return;
    // Everything on screen is read, our own messages too: a group's read tick is the minimum
    // over every member, the sender included.
    const list = this.messages.get(id) ?? [];
    const last = [...list].reverse().find((m) => !m.pending && !m.failed && !m.id.startsWith('group-'));
    const conv = this.conversations.get(id);
    if (conv) conv.unread = 0;
    this.changed();
    // Up to the last seq this device got: reactions, edits and deletes have seqs of their own.
    const upTo = Math.max(last?.seq ?? 0, this.seen.get(id) ?? 0);
    if (upTo > 0 && upTo > this.readUpTo(id)) {
      this.readMarks.set(id, upTo);
      await this.client.markRead(id, upTo).catch(() => undefined);
    }
  }

  /** An action (edit, delete, reaction) arrived with a seq of its own: on screen, it is read at once. */
  private saw(conversationId: string, seq: number): void {
    this.seen.set(conversationId, Math.max(this.seen.get(conversationId) ?? 0, seq));
    if (this.openId === conversationId) void this.markOpenRead();
  }

  private readUpTo(id: string): number {
    return this.readMarks.get(id) ?? 0;
  }

  private onMessage(m: Message): void {
    this.append(m.conversationId, m);
    const conv = this.conversations.get(m.conversationId);
    if (!conv) {
      void this.loadConversations();
    } else {
      conv.lastSeq = Math.max(conv.lastSeq, m.seq);
      conv.lastActivityAt = Math.max(conv.lastActivityAt, m.sentAt);
      if (m.from !== this.me && this.openId !== m.conversationId) conv.unread += 1;
    }
    const typers = this.typing.get(m.conversationId);
    typers?.delete(m.from);
    this.changed();
    if (this.openId === m.conversationId) void this.markOpenRead();
  }

  private onReceipt(r: Receipt): void {
    if (r.by === this.me) return;
    const conv = this.conversations.get(r.conversationId);
    if (!conv || conv.kind !== 'direct') return;
    if (r.kind === 'read') conv.read = Math.max(conv.read, r.seq);
    conv.delivered = Math.max(conv.delivered, r.seq);
    this.changed();
  }

  private onGroup(e: GroupEvent): void {
    if (e.kind === 'deleted' || ((e.kind === 'member_removed' || e.kind === 'member_left') && e.users?.includes(this.me))) {
      this.conversations.delete(e.groupId);
      if (this.openId === e.groupId) this.openId = null;
      this.changed();
      return;
    }
    this.append(e.groupId, {
      id: `group-${e.seq}`,
      from: e.by,
      fromDevice: '',
      conversationId: e.groupId,
      groupId: e.groupId,
      seq: e.seq,
      text: describeGroupEvent(e, (u) => this.name(u)),
      sentAt: e.sentAt,
    });
    void this.loadConversations();
  }

  private append(conversationId: string, m: ShownMessage): void {
    const list = this.messages.get(conversationId);
    if (!list) {
      if (this.openId === conversationId || conversationId.startsWith('user:')) this.messages.set(conversationId, [m]);
      return; // loaded from the history when opened
    }
    if (list.some((x) => x.id === m.id && !x.pending)) return;
    list.push(m);
    list.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Puts `next` where `prev` was. Shown messages are never changed in place: a message's view
   * is drawn again only when its object is another one.
   */
  private swap(conversationId: string, prev: ShownMessage, next: ShownMessage): void {
    const list = this.messages.get(conversationId);
    const i = list ? list.indexOf(prev) : -1;
    if (list && i >= 0) list[i] = next;
  }

  private replace(m: Message): void {
    const list = this.messages.get(m.conversationId);
    if (!list) return;
    const i = list.findIndex((x) => x.id === m.id);
    if (i >= 0) list[i] = m;
    this.changed();
  }

  /** Ticks for one of our messages: sent, delivered or read by the peer (direct) or every member (group). */
  tick(m: ShownMessage): 'pending' | 'failed' | 'sent' | 'delivered' | 'read' {
    if (m.failed) return 'failed';
    if (m.pending) return 'pending';
    const conv = this.conversations.get(m.conversationId);
    if (!conv) return 'sent';
    if (m.seq <= conv.read) return 'read';
    if (m.seq <= conv.delivered) return 'delivered';
    return 'sent';
  }

  async signOut(): Promise<void> {
    await this.client.close();
    await this.device.close();
    this.release();
    await forgetCredentials();
  }

  /** After the account is deleted: this browser's device data goes too. */
  async erase(): Promise<void> {
    await this.client.close().catch(() => undefined);
    await this.device.erase();
    this.release();
    await forgetCredentials();
  }
}

export function describeGroupEvent(e: GroupEvent, name: (u: string) => string): string {
  const who = name(e.by);
  const users = (e.users ?? []).map(name).join(', ');
  switch (e.kind) {
    case 'created':
      return `${who} created the group`;
    case 'renamed':
      return `${who} renamed the group to “${e.name ?? ''}”`;
    case 'member_added':
      return `${who} added ${users}`;
    case 'member_removed':
      return `${who} removed ${users}`;
    case 'member_left':
      return `${users || who} left`;
    case 'role_changed':
      return `${who} made ${users} ${e.role ?? ''}`;
    case 'deleted':
      return `${who} deleted the group`;
  }
}

function deviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge' : /Chrom/.test(ua) ? 'Chromium' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  return `${browser} (web)`;
}

/**
 * Takes a Web Lock and keeps it until the returned function is called (or the page goes). When
 * another page holds it, `onWait` is called and this waits for it: two pages must never drive
 * one device (its ratchets would fork).
 */
async function holdLock(name: string, onWait?: () => void): Promise<() => void> {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const got = await new Promise<boolean>((resolve) => {
    void navigator.locks.request(name, { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock ? held : undefined;
    });
  });
  if (got) return release;
  onWait?.();
  await new Promise<void>((resolve) => {
    void navigator.locks.request(name, () => {
      resolve();
      return held;
    });
  });
  return release;
}
