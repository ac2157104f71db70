// Prometheus metrics (prom-client), one registry per process, served at /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  connections: Gauge;
  messagesSent: Counter;
  messagesDelivered: Counter;
  errors: Counter<'code' | 'transport'>;
  handlerCrashes: Counter<'where'>;
  backendFailures: Counter<'backend' | 'operation'>;
  sendCommitSeconds: Histogram;
  commitBatchSize: Histogram;
  frameSeconds: Histogram<'type'>;
  groupFanoutDevices: Counter;
  groupFanoutBroadcasts: Counter;
  fileUploads: Counter<'result'>;
  fileDownloads: Counter<'kind'>;
  fileBytes: Counter<'direction'>;
  filesExpired: Counter;
  blobsPurged: Counter;
  messagesPurged: Counter<'reason'>;
  messageBytesPurged: Counter<'reason'>;
  pushesQueued: Counter;
  pushesCoalesced: Counter;
  pushesSent: Counter<'adapter' | 'outcome'>;
  routeCacheStale: Counter;
  deliveryPublishes: Counter;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    connections: new Gauge({ name: 'parley_ws_connections', help: 'Open WebSocket connections', registers }),
    routeCacheStale: new Counter({
      name: 'parley_route_cache_stale_total',
      help: 'Users whose cached routes were found out of date after a delivery (the delivery was forwarded to their current devices)',
      registers,
    }),
    deliveryPublishes: new Counter({
      name: 'parley_delivery_publishes_total',
      help: 'Publishes to other gateways (one per destination gateway per flush)',
      registers,
    }),
    messagesSent: new Counter({ name: 'parley_messages_sent_total', help: 'Messages persisted and acknowledged', registers }),
    messagesDelivered: new Counter({
      name: 'parley_messages_delivered_total',
      help: 'Message frames written to device sockets (live and sync)',
      registers,
    }),
    errors: new Counter({
      name: 'parley_errors_total',
      help: 'Errors returned to clients, by code and transport',
      labelNames: ['code', 'transport'],
      registers,
    }),
    handlerCrashes: new Counter({
      name: 'parley_handler_crashes_total',
      help: 'Unexpected throws caught in a socket or request handler (each closed only its own connection), by where',
      labelNames: ['where'],
      registers,
    }),
    backendFailures: new Counter({
      name: 'parley_backend_failures_total',
      help: 'Failed calls to backing services',
      labelNames: ['backend', 'operation'],
      registers,
    }),
    sendCommitSeconds: new Histogram({
      name: 'parley_send_commit_seconds',
      help: 'Time from a send frame to its durable commit',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    commitBatchSize: new Histogram({
      name: 'parley_commit_batch_size',
      help: 'Messages per group-commit transaction',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    }),
    frameSeconds: new Histogram({
      name: 'parley_frame_seconds',
      help: 'Time to handle an inbound frame, by type',
      labelNames: ['type'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    }),
    groupFanoutBroadcasts: new Counter({
      name: 'parley_group_fanout_broadcasts_total',
      help: 'Large-group messages broadcast by the fan-out workers to every gateway (each delivers to its own devices)',
      registers,
    }),
    groupFanoutDevices: new Counter({
      name: 'parley_group_fanout_devices_total',
      help: 'Group messages handed to gateways for online member devices by the fan-out workers',
      registers,
    }),
    fileUploads: new Counter({
      name: 'parley_file_uploads_total',
      help: 'Files uploaded, by result: stored (a new blob) or deduplicated (the blob existed)',
      labelNames: ['result'],
      registers,
    }),
    fileDownloads: new Counter({
      name: 'parley_file_downloads_total',
      help: 'File downloads started, by kind: full or range',
      labelNames: ['kind'],
      registers,
    }),
    fileBytes: new Counter({
      name: 'parley_file_bytes_total',
      help: 'File bytes received (in) and sent (out)',
      labelNames: ['direction'],
      registers,
    }),
    filesExpired: new Counter({ name: 'parley_files_expired_total', help: 'Files deleted by the retention sweep', registers }),
    blobsPurged: new Counter({ name: 'parley_blobs_purged_total', help: 'Unreferenced blobs deleted from the blob store', registers }),
    messagesPurged: new Counter({
      name: 'parley_messages_purged_total',
      help: 'Message rows erased by the purge (messaging/purge.ts), by reason: acked, age or expired',
      labelNames: ['reason'],
      registers,
    }),
    messageBytesPurged: new Counter({
      name: 'parley_message_bytes_purged_total',
      help: 'Ciphertext bytes erased by the purge, by reason (acked also counts one device’s copy erased from a row that stays)',
      labelNames: ['reason'],
      registers,
    }),
    pushesQueued: new Counter({ name: 'parley_pushes_queued_total', help: 'Pushes queued for devices without a live connection (notifications/)', registers }),
    pushesCoalesced: new Counter({
      name: 'parley_pushes_coalesced_total',
      help: 'Messages folded into a push a device was already owed (coalescing)',
      registers,
    }),
    pushesSent: new Counter({
      name: 'parley_pushes_total',
      help: 'Push attempts by adapter (webhook, webpush) and outcome (sent, gone, retry, failed)',
      labelNames: ['adapter', 'outcome'],
      registers,
    }),
  };
}
