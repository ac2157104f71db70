// Creates registered SDK clients against a running server and records what they receive.
import { createClient, type GroupEvent, type GroupReceipt, type Message, type ParleyClient, type Receipt } from '../../client-sdk/index.js';
import { uniqueName } from './wait.js';

export interface Recorded {
  client: ParleyClient;
  username: string;
  password: string;
  messages: Message[];
  receipts: Receipt[];
  groupEvents: GroupEvent[];
  groupReceipts: GroupReceipt[];
  errors: Error[];
}

export async function newUser(url: string | string[], prefix: string, connect = true): Promise<Recorded> {
  const username = uniqueName(prefix);
  const password = 'password-' + username;
  const client = createClient({ url, username, password, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
  const r: Recorded = { client, username, password, messages: [], receipts: [], groupEvents: [], groupReceipts: [], errors: [] };
  client.on('message', (m) => r.messages.push(m));
  client.on('receipt', (x) => r.receipts.push(x));
  client.on('group', (e) => r.groupEvents.push(e));
  client.on('group_receipt', (x) => r.groupReceipts.push(x));
  client.on('error', (e) => r.errors.push(e));
  await client.register();
  if (connect) await client.connect();
  return r;
}
