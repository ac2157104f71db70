// In-memory broker: the embedded default. Single process only; also lets tests run several gateways in one process.
import type { Broker, BrokerHandler } from './broker.js';

export class MemoryBroker implements Broker {
  private readonly channels = new Map<string, Set<BrokerHandler>>();

  async publish(channel: string, message: string): Promise<void> {
    const handlers = this.channels.get(channel);
    if (!handlers) return;
    // Asynchronous like a real broker, so callers never depend on re-entrant delivery.
    for (const h of [...handlers]) queueMicrotask(() => h(message));
  }

  async subscribe(channel: string, handler: BrokerHandler): Promise<() => Promise<void>> {
    let set = this.channels.get(channel);
    if (!set) this.channels.set(channel, (set = new Set()));
    const wrapped: BrokerHandler = (m) => handler(m);
    set.add(wrapped);
    return async () => {
      set.delete(wrapped);
      if (set.size === 0 && this.channels.get(channel) === set) this.channels.delete(channel);
    };
  }

  async close(): Promise<void> {
    this.channels.clear();
  }
}
