// What run.ts hands the load generator (argv) and what the generator prints back (one JSON line on stdout).
import type { BenchTransport } from './pair-sockets.js';
import type { Settings } from './settings.js';
import type { LatencySummary } from './stats.js';

/** The server under load: the raw relay (ws://…) or Parley (http://…), and its process id for CPU sampling. */
export interface Target {
  kind: 'raw' | 'parley';
  /** How the generator connects: the raw relay is always plain `ws`; Parley over its WebSocket endpoint or Socket.IO. */
  transport: BenchTransport;
  /** Every gateway of the target (one for the raw relay); pairs spread their two ends over them. */
  urls: string[];
  /** The server processes, for CPU sampling (summed). */
  pids: number[];
}

export interface LoadRequest {
  target: Target;
  settings: Settings;
}

export interface ScenarioResult {
  scenario: 'max' | 'rate';
  /** Messages the scenario meant to send. */
  planned: number;
  delivered: number;
  /** Sends answered with an error frame (never delivered). */
  failed: number;
  /** From the first send to the last delivery. */
  seconds: number;
  /** Delivered messages per second over `seconds`. */
  throughput: number;
  /** Send → deliver, milliseconds. */
  latency: LatencySummary;
  /** Error frames by code. */
  errors: Record<string, number>;
  /** False when the scenario stalled and gave up before every message was delivered or failed. */
  complete: boolean;
  /** CPU used during the scenario, as a share of one core (1 = 100 %); null where not measurable. */
  serverCpu: number | null;
  loadCpu: number;
  /** CPU time per delivered message, microseconds: the server processes (summed, from /proc) and the load generator. */
  serverCpuUsPerMsg: number | null;
  loadCpuUsPerMsg: number | null;
}

export interface LoadResult {
  target: Target['kind'];
  transport: BenchTransport;
  /** Connecting (and, for Parley, registering and logging in) every pair. */
  setupSeconds: number;
  /** Size of one `send` frame on the wire. */
  frameBytes: number;
  scenarios: ScenarioResult[];
}
