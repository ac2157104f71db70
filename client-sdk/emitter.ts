// A tiny typed event emitter that works in Node and browsers alike.

export type Listener<T> = (value: T) => void;

/**
 * @example
 * const e = new Emitter<{ message: string }>();
 * const off = e.on('message', (m) => console.log(m));
 */
export class Emitter<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const l of [...(this.listeners.get(event) ?? [])]) {
      try {
        (l as Listener<Events[K]>)(value);
      } catch (err) {
        // A throwing app listener must not break delivery; surface it asynchronously.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}
