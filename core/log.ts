import { pino } from 'pino';

export type Logger = pino.Logger;

/** Field paths whose values never reach a log line. */
const REDACT = [
  'password',
  'token',
  'secret',
  'apiKey',
  'authorization',
  'passphrase',
  'databaseUrl',
  '*.password',
  '*.token',
  '*.secret',
  '*.apiKey',
  '*.authorization',
  '*.passphrase',
  '*.databaseUrl',
  'req.headers.authorization',
  'req.headers.cookie',
];

/** Structured JSON logger (fields first, message last); secrets are redacted by field name. */
export function createLogger(options: {
  level: string;
  name?: string;
  destination?: pino.DestinationStream;
}) {
  return pino(
    {
      level: options.level,
      name: options.name ?? 'deploy-mcp',
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    options.destination,
  );
}
