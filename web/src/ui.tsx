// Shared pieces of the web client's screens: re-rendering on model changes, error wording, times, and the dialog panel.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { ParleyError } from '../../client-sdk/index.js';
import type { ChatModel } from './model.js';

/** Re-renders the calling component whenever the model changes. */
export function useModel(model: ChatModel): void {
  const [, setVersion] = useState(0);
  useEffect(() => model.subscribe(() => setVersion((n) => n + 1)), [model]);
}

export function errorText(err: unknown): string {
  if (err instanceof ParleyError) {
    if (err.code === 'unauthorized') return 'Wrong username or password.';
    if (err.code === 'conflict') return 'That username is taken.';
    if (err.code === 'not_found') return 'No such user.';
    if (err.code === 'rate_limited') return 'Too many attempts; wait a moment.';
    return err.message;
  }
  return (err as Error).message ?? String(err);
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: 'short' });

/** A time today, else a date (formatters made once: formatting is on every message's render path). */
export function formatWhen(ms: number): string {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? TIME.format(d) : DATE.format(d);
}

/** A panel with a heading and a close button; Escape closes it, and focus moves into it. */
export function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLElement>(null);
  useEffect(() => {
    ref.current?.querySelector<HTMLElement>('input, button:not(.close), select, textarea')?.focus();
  }, []);
  return (
    <section
      class="dialog"
      role="dialog"
      aria-label={title}
      ref={ref}
      onKeyDown={(e) => {
        if (e.key === 'Escape') onClose();
      }}
    >
      <header class="bar">
        <h2>{title}</h2>
        <button type="button" class="icon close" aria-label={`Close ${title}`} onClick={onClose}>
          ✕
        </button>
      </header>
      {children}
    </section>
  );
}
