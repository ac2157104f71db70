// Broker on Redis pub/sub (ioredis): gateway channels and presence events across processes.
import type { Redis } from 'ioredis';
import type { Broker, BrokerHandler } from './broker.js';
import { AppError } from './errors.js';

/**
 * Channels: `{prefix}{channel}` (prefix default `parley:`), e.g. `parley:gateway:gw1` and
 * `parley:presence`. Pub/sub is at most once; the store is the record.
 *
 * Takes two ready clients: one publishes, one is dedicated to subscriptions (a subscribed
 * connection cannot publish). After a lost connection ioredis reconnects and resubscribes
 * by itself (autoResubscribe); messages published meanwhile are lost, so `onReconnect`
 * listeners run once the subscriber is ready again and callers catch up from the store.
 */
export class RedisBroker implements Broker {
  private readonly handlers = new Map<string, Set<BrokerHandler>>();
  private readonly reconnectListeners: (() => void)[] = [];
  private readonly p: string;
  private wasReady: boolean;

  constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
    options: { prefix?: string } = {},
  ) {
    this.p = options.prefix ?? 'parley:';
    this.wasReady = sub.status === 'ready';
    sub.on('message', (channel: string, message: string) => {
      for (const h of this.handlers.get(channel) ?? []) h(message);
    });
    sub.on('ready', () => {
      if (this.wasReady) for (const l of this.reconnectListeners) l();
      this.wasReady = true;
    });
  }

  async publish(channel: string, message: string): Promise<void> {
    try {
      await this.pub.publish(this.p + channel, message);
    } catch (err) {
      throw new AppError('unavailable', 'broker unavailable', { cause: err });
    }
  }

  async subscribe(channel: string, handler: BrokerHandler): Promise<() => Promise<void>> {
    const name = this.p + channel;
    let set = this.handlers.get(name);
    if (!set) {
      this.handlers.set(name, (set = new Set()));
      try {
        await this.sub.subscribe(name);
      } catch (err) {
        this.handlers.delete(name);
        throw new AppError('unavailable', 'broker unavailable', { cause: err });
      }
    }
    const wrapped: BrokerHandler = (m) => handler(m);
    set.add(wrapped);
    return async () => {
      set.delete(wrapped);
      if (set.size === 0 && this.handlers.get(name) === set) {
        this.handlers.delete(name);
        await this.sub.unsubscribe(name).catch(() => {});
      }
    };
  }

  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  async close(): Promise<void> {
    this.handlers.clear();
  }
}
