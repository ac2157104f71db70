// One message in a chat: text or file (images previewed), reply quote, reactions, ticks, and its actions (reply, react, edit, delete for everyone).
import { memo } from 'preact/compat';
import { useEffect, useState } from 'preact/hooks';
import type { ChatModel, ShownMessage } from './model.js';
import { errorText, formatWhen } from './ui.js';

const EMOJI = ['👍', '❤️', '😂', '😮', '😢', '🙏'];
const TICKS = { pending: '◷', failed: '⚠', sent: '✓', delivered: '✓✓', read: '✓✓' } as const;

interface Props {
  model: ChatModel;
  m: ShownMessage;
  quoted: ShownMessage | undefined;
  /** Ours: its tick; theirs: null. */
  tick: ReturnType<ChatModel['tick']> | null;
  /** The sender's name, shown in groups ('' otherwise). */
  from: string;
  onReply: (m: ShownMessage) => void;
  onEdit: (m: ShownMessage) => void;
  onError: (e: string) => void;
}

/**
 * Drawn again only when what it shows changed: the model replaces a message's object on every
 * change, so a chat of n messages costs one view, not n, per message that arrives.
 */
export const MessageView = memo(
  MessageViewOf,
  (a: Props, b: Props) => a.m === b.m && a.quoted === b.quoted && a.tick === b.tick && a.from === b.from && a.model === b.model,
);

function MessageViewOf(props: Props) {
  const { model, m, quoted, tick } = props;
  const mine = m.from === model.me;
  const system = m.id.startsWith('group-');
  const [reacting, setReacting] = useState(false);
  if (system) {
    return (
      <li class="msg system" data-seq={m.seq}>
        {m.text}
      </li>
    );
  }
  const act = (f: () => Promise<unknown>) => void f().catch((err) => props.onError(errorText(err)));
  return (
    <li class={`msg ${mine ? 'mine' : 'theirs'} ${m.deleted ? 'deleted' : ''}`} data-id={m.id} data-seq={m.seq} tabIndex={0}>
      {props.from && <span class="from">{props.from}</span>}
      {quoted && (
        <blockquote class="quote">
          <span class="from">{model.name(quoted.from)}</span> {quoted.deleted ? 'Deleted message' : quoted.text.slice(0, 120)}
        </blockquote>
      )}
      {m.deleted ? <p class="text">This message was deleted.</p> : m.file ? <FileView m={m} onError={props.onError} /> : <p class="text">{m.text}</p>}
      <span class="meta">
        {m.editedAt && !m.deleted ? <span class="edited">edited </span> : null}
        <time dateTime={new Date(m.sentAt).toISOString()}>{formatWhen(m.sentAt)}</time>
        {tick && (
          <span class={`tick ${tick}`} data-tick={tick} aria-label={tick} title={tick}>
            {TICKS[tick]}
          </span>
        )}
      </span>
      {m.reactions && m.reactions.length > 0 && (
        <ul class="reactions" aria-label="Reactions">
          {m.reactions.map((r) => (
            <li key={r.emoji}>
              <button
                type="button"
                class={r.users.includes(model.me) ? 'reacted' : ''}
                aria-label={`${r.emoji} ${r.users.length}: ${r.users.map((u) => model.name(u)).join(', ')}`}
                onClick={() => act(() => model.toggleReaction(m, r.emoji))}
              >
                {r.emoji} {r.users.length}
              </button>
            </li>
          ))}
        </ul>
      )}
      {!m.deleted && !m.pending && !m.failed && (
        <div class="actions">
          <button type="button" onClick={() => props.onReply(m)}>
            Reply
          </button>
          <button type="button" aria-expanded={reacting} onClick={() => setReacting(!reacting)}>
            React
          </button>
          {mine && !m.file && (
            <button type="button" onClick={() => props.onEdit(m)}>
              Edit
            </button>
          )}
          {mine && (
            <button type="button" onClick={() => confirm('Delete this message for everyone?') && act(() => model.deleteForEveryone(m))}>
              Delete
            </button>
          )}
          {reacting && (
            <span class="picker" role="group" aria-label="Pick a reaction">
              {EMOJI.map((e) => (
                <button type="button" key={e} aria-label={`React ${e}`} onClick={() => (setReacting(false), act(() => model.toggleReaction(m, e)))}>
                  {e}
                </button>
              ))}
            </span>
          )}
        </div>
      )}
    </li>
  );
}

/** A file: images are downloaded (checked and decrypted by the SDK) and shown; other files download on request. */
function FileView({ m, onError }: { m: ShownMessage; onError: (e: string) => void }) {
  const file = m.file!;
  const image = /^image\/(png|jpeg|gif|webp|avif)$/.test(file.type);
  const [url, setUrl] = useState<string | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const fetchBlob = async () => {
    setProgress(0);
    const bytes = await file.download({ onProgress: (p) => setProgress(p.total ? p.loaded / p.total : 0) });
    setProgress(null);
    return URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: file.type || 'application/octet-stream' }));
  };
  useEffect(() => {
    if (!image) return;
    let made: string | null = null;
    fetchBlob()
      .then((u) => setUrl((made = u)))
      .catch((err) => onError(`${file.name}: ${errorText(err)}`));
    return () => {
      if (made) URL.revokeObjectURL(made);
    };
  }, [m.id]);
  return (
    <div class="file">
      {image && url ? <img src={url} alt={file.name} class="preview" /> : null}
      {progress !== null && <progress aria-label={`Download of ${file.name}`} max={1} value={progress} />}
      <span class="name">
        {file.name} ({formatSize(file.size)})
      </span>
      {!image && (
        <button
          type="button"
          onClick={() =>
            void fetchBlob()
              .then((u) => {
                const a = document.createElement('a');
                a.href = u;
                a.download = file.name;
                a.click();
                setTimeout(() => URL.revokeObjectURL(u), 10_000);
              })
              .catch((err) => onError(`${file.name}: ${errorText(err)}`))
          }
        >
          Download
        </button>
      )}
    </div>
  );
}

function formatSize(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
