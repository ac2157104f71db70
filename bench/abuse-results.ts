// What the abuse bench hands its bystander and attacker processes (argv) and what they print back (JSON lines on stdout).
import type { Attack, Settings } from './settings.js';
import type { LatencySummary } from './stats.js';

/** argv[2] of bench/abuse-bystander.ts and bench/abuse-attacker.ts. */
export interface AbuseChildRequest {
  /** http:// URLs of the target's gateways. */
  urls: string[];
  /** The bench's settings: `abuse` for both, and BENCH_TEXT_CHARS for the bystander's messages. */
  settings: Settings;
}

/** One phase of the bystander pair: the messages it sent in the phase and what became of each. */
export interface BystanderResult {
  phase: string;
  /** From the first send to the last one. */
  seconds: number;
  sent: number;
  /** Distinct messages delivered. */
  delivered: number;
  /** Sent, never delivered (within the grace period after the phase). */
  lost: number;
  /** Deliveries of a message already delivered. */
  duplicated: number;
  /** Deliveries of a message older than one already delivered in the same direction. */
  outOfOrder: number;
  /** Deliveries of an earlier phase's messages that arrived during this one (counted lost there). */
  late: number;
  /** Ticks with no send because that end was reconnecting. */
  skipped: number;
  /** Send → deliver, ms. */
  latency: LatencySummary;
  /** Error frames the bystander got, by code. */
  errors: Record<string, number>;
  /** Its sockets closed by the server: "A 4001 too many frames". */
  closes: string[];
  /** Its own CPU during the phase, share of one core. */
  cpu: number;
}

/** What one attack did and what the server answered. */
export interface AttackResult {
  attack: Attack;
  /** How long the attack ran. */
  seconds: number;
  /** One line for the report: what was sent, what came back. */
  summary: string;
  /** Whether the server's answer met the expectation of this attack (e.g. 408 within the timeout), null when none applies. */
  ok: boolean | null;
  /** Anything the protocol does not document or that looks wrong: undocumented codes, 5xx, a crash. */
  findings: string[];
  /** Its own CPU during the attack, share of one core. */
  cpu: number;
}

/** The attacker's first line once its users exist. */
export interface AttackerReady {
  attackerReady: true;
  /** What setup showed (the 7th device refused). */
  notes: string[];
}
