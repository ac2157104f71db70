// What run.ts hands the load generator (argv) and what the generator prints back (one JSON line on stdout).
import type { PostgresCounters, RedisCounters } from './engine-stats.js';
import type { BenchTransport } from './pair-sockets.js';
import type { Settings } from './settings.js';
import type { LatencySummary } from './stats.js';

/** The server under load: the raw relay (ws://…) or Parley (http://…), its processes and the engines behind it, for CPU sampling and counters. */
export interface Target {
  kind: 'raw' | 'parley';
  /** How the generator connects: the raw relay is always plain `ws`; Parley over its WebSocket endpoint or Socket.IO. */
  transport: BenchTransport;
  /** Every gateway of the target (one for the raw relay); pairs spread their two ends over them. */
  urls: string[];
  /** The server's own processes by name (`relay`, or the gateways `gw1`, `gw2`, …), for CPU sampling. */
  processes: { name: string; pid: number }[];
  /** PostgreSQL behind Parley: its CPU (the whole server's process tree) and the bench database's pg_stat_database. */
  postgres?: { adminUrl: string; database: string };
  /** Redis behind Parley: its CPU (the redis-server process) and INFO counters. */
  redis?: { url: string };
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
  /**
   * CPU used during the scenario, as a share of one core (1 = 100 %); null where not measurable.
   * The server is every server process together: the gateways (or the relay), PostgreSQL and Redis.
   */
  serverCpu: number | null;
  loadCpu: number;
  /** CPU time per delivered message, microseconds: the server processes (summed, from /proc) and the load generator. */
  serverCpuUsPerMsg: number | null;
  loadCpuUsPerMsg: number | null;
  /** Each server process (or process tree: `postgres`, `redis`) on its own: CPU seconds over the scenario, null where not measurable. */
  processes: { name: string; cpuSeconds: number | null }[];
  /** The engines' own counters over the scenario (differences); null for a target without engines. */
  engines: EngineCounts | null;
}

/** Differences of PostgreSQL's and Redis's own statistics over one scenario (see bench/engine-stats.ts). */
export interface EngineCounts {
  postgres: PostgresCounters | null;
  redis: RedisCounters | null;
  /** What could not be measured, and why (statements not counted, a process not visible). */
  notes: string[];
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
