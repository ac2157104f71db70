// The broker port: named channels between processes, used for gateway delivery and presence events.

/** Called for each message published on a subscribed channel. Must not throw. */
export type BrokerHandler = (message: string) => void;

/**
 * Publish/subscribe on named channels. Each gateway subscribes to its own channel
 * (`gateway:<id>`), so delivery costs one publish per target gateway, not per device.
 *
 * Contract (broker.contract.ts):
 * - A message published after `subscribe` resolved reaches every current subscriber of that
 *   channel once, and messages from one publisher arrive in publish order.
 * - Delivery is at most once: a message published while nobody listens is gone. The store is
 *   the record; the broker only makes delivery fast.
 * - The returned function unsubscribes; after it resolves, the handler is not called again.
 * - `publish` rejects with an `unavailable` AppError when the broker cannot take the message;
 *   it never swallows the failure.
 */
export interface Broker {
  publish(channel: string, message: string): Promise<void>;
  subscribe(channel: string, handler: BrokerHandler): Promise<() => Promise<void>>;
  close(): Promise<void>;
  /**
   * Optional: called after the broker lost its connection and subscribed again. Messages
   * published in between were lost, so subscribers should catch up from the store.
   */
  onReconnect?(listener: () => void): void;
}

export const gatewayChannel = (gatewayId: string): string => `gateway:${gatewayId}`;
export const PRESENCE_CHANNEL = 'presence';
/** Large groups' messages, to every gateway at once: each delivers to its own member devices. */
export const GROUPS_CHANNEL = 'groups';
