// Structured logging (pino). Tokens, passwords and message bodies are redacted wherever they could appear.
import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths that must never reach a log line, whatever logs them. */
const REDACT = [
  'token',
  'password',
  'body',
  'payloads',
  'headers.authorization',
  'headers["sec-websocket-protocol"]',
  'req.headers.authorization',
  'req.headers["sec-websocket-protocol"]',
  '*.token',
  '*.password',
  '*.body',
  '*.payloads',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } }, destination);
}
