// The web client's screens: sign-in, the chat list, a chat, group info, safety numbers and settings (Preact).
import { useEffect, useRef, useState } from 'preact/hooks';
import { Dialog, errorText, formatWhen, useModel } from './ui.js';
import { ChatModel, type Conversation, type ShownMessage } from './model.js';
import { loadCredentials } from './vault.js';
import { MessageView } from './message.js';
import { GroupInfo } from './group.js';
import { SafetyNumber } from './safety.js';
import { Settings } from './settings.js';
import { enableNotifications } from './notifications.js';

export function App() {
  const [model, setModel] = useState<ChatModel | null>(null);
  const [booting, setBooting] = useState(true);
  const [waiting, setWaiting] = useState(false);
  useEffect(() => {
    void (async () => {
      const saved = await loadCredentials();
      if (saved) setModel(await ChatModel.start(saved, { onWait: () => setWaiting(true) }).catch(() => null));
      setBooting(false);
    })();
  }, []);
  if (booting && waiting) {
    return (
      <p class="boot" role="status">
        Parley is open in another tab or window. Close it to use Parley here.
      </p>
    );
  }
  if (booting) return <p class="boot">Loading Parley…</p>;
  if (!model) return <SignIn onReady={setModel} />;
  return <Shell model={model} onSignedOut={() => setModel(null)} />;
}

function SignIn({ onReady }: { onReady: (m: ChatModel) => void }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event, register: boolean) => {
    e.preventDefault();
    const form = (e.target as HTMLElement).closest('form')!;
    const data = new FormData(form);
    const username = String(data.get('username') ?? '').trim();
    const password = String(data.get('password') ?? '');
    setBusy(true);
    setError('');
    try {
      onReady(await ChatModel.start({ username, password }, { register }));
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>Parley</h1>
      <p class="lede">End-to-end encrypted chat. Your keys and history stay in this browser.</p>
      <form onSubmit={(e) => submit(e, false)} aria-label="Sign in">
        <label>
          Username
          <input name="username" autocomplete="username" required minLength={3} maxLength={32} pattern="[A-Za-z0-9_.\-]+" autofocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required minLength={8} />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <div class="row">
          <button type="submit" disabled={busy}>
            Sign in
          </button>
          <button type="button" class="secondary" disabled={busy} onClick={(e) => submit(e, true)}>
            Create account
          </button>
        </div>
      </form>
    </main>
  );
}

type Panel = null | 'settings' | 'group' | 'safety' | 'new-group';

function Shell({ model, onSignedOut }: { model: ChatModel; onSignedOut: () => void }) {
  useModel(model);
  const [panel, setPanel] = useState<Panel>(null);
  useEffect(() => {
    const onVisible = () => void model.markOpenRead();
    document.addEventListener('visibilitychange', onVisible);
    return () => document.removeEventListener('visibilitychange', onVisible);
  }, [model]);
  const open = model.openId ? model.conversations.get(model.openId) : undefined;
  return (
    <div class={`shell ${open ? 'chat-open' : ''}`}>
      <aside class="sidebar">
        <header class="bar">
          <h1>Parley</h1>
          <span class="me">{model.credentials.username}</span>
          <button type="button" class="icon" aria-label="Settings" onClick={() => setPanel(panel === 'settings' ? null : 'settings')}>
            ⚙
          </button>
        </header>
        <ConnectionBanner model={model} />
        <NewChat model={model} onGroup={() => setPanel('new-group')} />
        <ChatList model={model} onOpen={(id) => (setPanel(null), void model.open(id))} />
      </aside>
      <main class="main">
        {panel === 'settings' ? (
          <Settings model={model} onClose={() => setPanel(null)} onSignedOut={onSignedOut} onNotifications={() => enableNotifications(model)} />
        ) : panel === 'new-group' ? (
          <NewGroup model={model} onDone={(id) => (setPanel(null), id && void model.open(id))} />
        ) : open ? (
          <>
            <ChatView model={model} conv={open} onPanel={setPanel} />
            {panel === 'group' && open.kind === 'group' && <GroupInfo model={model} conv={open} onClose={() => setPanel(null)} />}
            {panel === 'safety' && open.peer && <SafetyNumber model={model} userId={open.peer} onClose={() => setPanel(null)} />}
          </>
        ) : (
          <p class="empty">Choose a chat, or start one with a username.</p>
        )}
      </main>
    </div>
  );
}

function ConnectionBanner({ model }: { model: ChatModel }) {
  const labels = { connecting: 'Connecting…', online: 'Connected', reconnecting: 'Offline: reconnecting…', offline: 'Disconnected' };
  const via = model.transport && model.transport !== 'websocket' ? ` (${model.transport})` : '';
  return (
    <div class={`connection ${model.connection}`} role="status" data-connection={model.connection} data-transport={model.transport ?? ''}>
      {labels[model.connection]}
      {model.connection === 'online' ? via : ''}
    </div>
  );
}

function NewChat({ model, onGroup }: { model: ChatModel; onGroup: () => void }) {
  const [error, setError] = useState('');
  return (
    <form
      class="new-chat"
      aria-label="New chat"
      onSubmit={async (e) => {
        e.preventDefault();
        const input = (e.target as HTMLFormElement).elements.namedItem('peer') as HTMLInputElement;
        setError('');
        try {
          const id = await model.startDirect(input.value);
          input.value = '';
          await model.open(id);
        } catch (err) {
          setError(errorText(err));
        }
      }}
    >
      <label>
        Start a chat with
        <input name="peer" placeholder="username" required autocomplete="off" />
      </label>
      <button type="submit">Start chat</button>
      <button type="button" class="secondary" onClick={onGroup}>
        New group
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

function ChatList({ model, onOpen }: { model: ChatModel; onOpen: (id: string) => void }) {
  const chats = model.sortedConversations();
  return (
    <nav aria-label="Chats">
      <ul class="chats">
        {chats.map((c) => (
          <li key={c.id}>
            <button type="button" class={`chat-item ${model.openId === c.id ? 'active' : ''}`} aria-current={model.openId === c.id ? 'true' : undefined} data-chat={c.title} onClick={() => onOpen(c.id)}>
              <span class="avatar" aria-hidden="true">
                {c.title.slice(0, 1).toUpperCase()}
              </span>
              <span class="title">{c.title}</span>
              <span class="when">{formatWhen(c.lastActivityAt)}</span>
              {c.unread > 0 && (
                <span class="badge" aria-label={`${c.unread} unread`}>
                  {c.unread}
                </span>
              )}
              <span class="sub">{presenceText(model, c) ?? (c.kind === 'group' ? 'Group' : '')}</span>
            </button>
          </li>
        ))}
      </ul>
      {chats.length === 0 && <p class="hint">No chats yet.</p>}
    </nav>
  );
}

function presenceText(model: ChatModel, c: Conversation): string | null {
  const typers = [...(model.typing.get(c.id) ?? [])];
  if (typers.length > 0) return c.kind === 'group' ? `${typers.map((u) => model.name(u)).join(', ')} typing…` : 'typing…';
  if (!c.peer) return null;
  const p = model.presence.get(c.peer);
  if (!p) return null;
  if (p.online) return 'online';
  return p.lastSeen ? `last seen ${formatWhen(p.lastSeen)}` : null;
}

function ChatView({ model, conv, onPanel }: { model: ChatModel; conv: Conversation; onPanel: (p: Panel) => void }) {
  const list = model.messages.get(conv.id) ?? [];
  const byId = new Map(list.map((m) => [m.id, m]));
  const [replyTo, setReplyTo] = useState<ShownMessage | null>(null);
  const [editing, setEditing] = useState<ShownMessage | null>(null);
  const [error, setError] = useState('');
  const bottom = useRef<HTMLDivElement>(null);
  useEffect(() => bottom.current?.scrollIntoView?.({ block: 'end' }), [list.length, conv.id]);
  const status = presenceText(model, conv);
  const uploads = [...model.uploads.values()].filter((u) => u.conversationId === conv.id);
  const run = (f: () => Promise<unknown>) => void f().catch((err) => setError(errorText(err)));
  return (
    <section class="chat" aria-label={`Chat with ${conv.title}`}>
      <header class="bar">
        <button type="button" class="icon back" aria-label="Back to chats" onClick={() => model.close()}>
          ←
        </button>
        <div class="who">
          <h2>{conv.title}</h2>
          <span class="status" aria-live="polite">
            {status ?? ''}
          </span>
        </div>
        {conv.kind === 'group' ? (
          <button type="button" class="secondary" onClick={() => onPanel('group')}>
            Group info
          </button>
        ) : conv.peer ? (
          <>
            <button type="button" class="secondary" onClick={() => onPanel('safety')}>
              Safety number
            </button>
            <BlockButton model={model} userId={conv.peer} />
            <button
              type="button"
              class="secondary"
              onClick={() => {
                const reason = prompt(`Report ${conv.title} to the operator: why?`);
                if (!reason) return;
                const theirs = list.filter((m) => m.from === conv.peer && !m.deleted).slice(-5);
                run(() =>
                  model.client.report({
                    userId: conv.peer!,
                    ...(conv.id.startsWith('user:') ? {} : { conversationId: conv.id }),
                    reason,
                    messages: theirs.map((m) => ({ id: m.id, seq: m.seq, text: m.text, sentAt: m.sentAt, from: m.from })),
                  }),
                );
              }}
            >
              Report
            </button>
          </>
        ) : null}
      </header>
      <ol class="messages" aria-label="Messages">
        {list.map((m) => (
          <MessageView
            key={m.id}
            model={model}
            m={m}
            quoted={m.replyTo ? byId.get(m.replyTo) : undefined}
            tick={m.from === model.me ? model.tick(m) : null}
            from={conv.kind === 'group' && m.from !== model.me && !m.id.startsWith('group-') ? model.name(m.from) : ''}
            onReply={setReplyTo}
            onEdit={setEditing}
            onError={setError}
          />
        ))}
        <div ref={bottom} />
      </ol>
      {uploads.map((u) => (
        <div class="upload" key={u.name}>
          <span>Sending {u.name}</span>
          <progress aria-label={`Upload of ${u.name}`} max={u.total || 1} value={u.loaded} />
        </div>
      ))}
      {error && (
        <p class="error" role="alert" onClick={() => setError('')}>
          {error}
        </p>
      )}
      <Composer
        model={model}
        conv={conv}
        replyTo={replyTo}
        editing={editing}
        onCancel={() => (setReplyTo(null), setEditing(null))}
        onSend={(text) =>
          run(async () => {
            if (editing) {
              setEditing(null);
              await model.edit(editing, text);
            } else {
              const r = replyTo;
              setReplyTo(null);
              await model.sendText(conv.id, text, r?.id);
            }
          })
        }
        onFile={(file) => run(() => model.sendFile(conv.id, file))}
      />
    </section>
  );
}

function BlockButton({ model, userId }: { model: ChatModel; userId: string }) {
  const [blocked, setBlocked] = useState<boolean | null>(null);
  useEffect(() => {
    void model.client.blocks().then((b) => setBlocked(b.some((x) => x.userId === userId)));
  }, [model, userId]);
  if (blocked === null) return null;
  return (
    <button
      type="button"
      class="secondary"
      onClick={async () => {
        if (blocked) await model.client.unblock(userId);
        else if (confirm(`Block ${model.name(userId)}? They will not be told.`)) await model.client.block(userId);
        else return;
        setBlocked(!blocked);
      }}
    >
      {blocked ? 'Unblock' : 'Block'}
    </button>
  );
}

function Composer(props: {
  model: ChatModel;
  conv: Conversation;
  replyTo: ShownMessage | null;
  editing: ShownMessage | null;
  onCancel: () => void;
  onSend: (text: string) => void;
  onFile: (f: File) => void;
}) {
  const { model, conv, replyTo, editing } = props;
  const text = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (editing && text.current) text.current.value = editing.text;
    text.current?.focus();
  }, [editing, replyTo, conv.id]);
  const send = () => {
    const value = text.current?.value.trim() ?? '';
    if (!value) return;
    text.current!.value = '';
    props.onSend(value);
  };
  return (
    <form
      class="composer"
      aria-label="Write a message"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      {(replyTo || editing) && (
        <div class="context">
          {editing ? 'Editing your message' : `Replying to ${model.name(replyTo!.from)}: ${replyTo!.text.slice(0, 60)}`}
          <button type="button" class="icon" aria-label="Cancel" onClick={props.onCancel}>
            ✕
          </button>
        </div>
      )}
      <label class="file">
        <span class="visually-hidden">Attach file</span>
        <span aria-hidden="true">+</span>
        <input
          type="file"
          onChange={(e) => {
            const input = e.target as HTMLInputElement;
            const f = input.files?.[0];
            input.value = '';
            if (f) props.onFile(f);
          }}
        />
      </label>
      <label class="text">
        <span class="visually-hidden">Message</span>
        <textarea
          ref={text}
          rows={1}
          maxLength={16000}
          placeholder="Message"
          onInput={() => model.setTyping(conv.id, true)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) {
              e.preventDefault();
              send();
            } else if (e.key === 'Escape') props.onCancel();
          }}
        />
      </label>
      <button type="submit">{editing ? 'Save' : 'Send'}</button>
    </form>
  );
}

function NewGroup({ model, onDone }: { model: ChatModel; onDone: (id: string | null) => void }) {
  const [error, setError] = useState('');
  return (
    <Dialog title="New group" onClose={() => onDone(null)}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const data = new FormData(e.target as HTMLFormElement);
          const members = String(data.get('members') ?? '')
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
          try {
            onDone(await model.createGroup(String(data.get('name') ?? '').trim(), members));
          } catch (err) {
            setError(errorText(err));
          }
        }}
      >
        <label>
          Group name
          <input name="name" required maxLength={100} />
        </label>
        <label>
          Members (usernames, comma-separated)
          <input name="members" required autocomplete="off" />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit">Create group</button>
      </form>
    </Dialog>
  );
}

