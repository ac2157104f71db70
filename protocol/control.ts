// The inbox and reports on the wire: shapes the server returns and the SDK sends (docs/protocol.md §1, §18).

/** One conversation as the inbox lists it (`GET /v1/conversations`). */
export interface ConversationSummary {
  id: string;
  kind: 'direct' | 'group';
  /** Direct: the other user (absent for a note to self). */
  peer?: string;
  /** Group: its name as stored (sealed by the clients: open it with the group's name key) and the caller's role. */
  group?: { name: string; role: string };
  lastSeq: number;
  /** When its last message was sent (or, before any, when it was created), epoch ms. */
  lastActivityAt: number;
  /** This device's delivered and read cursors. */
  delivered: number;
  read: number;
  /** Messages after the user's read cursor (the highest over their devices) that others sent and the user may see. */
  unread: number;
}

/** A page of the inbox. */
export interface ConversationPage {
  conversations: ConversationSummary[];
  /** Pass it as `cursor` for the next page; absent on the last one. */
  cursor?: string;
}

/** A message the reporter decrypted and chose to disclose to the operator, as their client showed it. */
export interface ReportedMessage {
  id: string;
  seq: number;
  text: string;
  sentAt: number;
  from: string;
}
