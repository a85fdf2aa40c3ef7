import express from 'express';
import { type HealthCheck, healthHandler } from '../core/health.ts';

export type McpAppDeps = {
  /** Checks /healthz runs (database, Temporal, ...). */
  health: Record<string, HealthCheck>;
};

/** The `server` role's express app: all of its HTTP wiring is in this file. */
export function createMcpApp(deps: McpAppDeps) {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', healthHandler('server', deps.health));
  return app;
}
