import express from 'express';
import { type HealthCheck, healthHandler } from '../core/health.ts';
import type { Logger } from '../core/log.ts';
import { type Metrics, type MetricsAccess, metricsHandler } from '../core/metrics.ts';
import { type GitHubWebhookDeps, githubWebhookRouter } from './webhooks/github.ts';

export type DeployerAppDeps = {
  health: Record<string, HealthCheck>;
  /** GitHub webhooks (POST /webhooks/github); absent: not served. */
  github?: GitHubWebhookDeps;
  /** GET /metrics (core/metrics.ts); absent or access off: not served (404). */
  metrics?: { metrics: Metrics; access: MetricsAccess; log: Logger };
};

/** The `deployer-server` role's express app (webhooks, /healthz and /metrics). */
export function createDeployerApp(deps: DeployerAppDeps) {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', healthHandler('deployer-server', deps.health));
  const m = deps.metrics;
  const scrape = m && metricsHandler(m.access, m.metrics, m.log);
  if (scrape) app.get('/metrics', scrape);
  if (deps.github) app.use(githubWebhookRouter(deps.github));
  return app;
}
