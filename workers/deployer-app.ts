import express from 'express';
import { type HealthCheck, healthHandler } from '../core/health.ts';
import { type GitHubWebhookDeps, githubWebhookRouter } from './webhooks/github.ts';

export type DeployerAppDeps = {
  health: Record<string, HealthCheck>;
  /** GitHub webhooks (POST /webhooks/github); absent: not served. */
  github?: GitHubWebhookDeps;
};

/** The `deployer-server` role's express app (webhooks and /healthz). */
export function createDeployerApp(deps: DeployerAppDeps) {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', healthHandler('deployer-server', deps.health));
  if (deps.github) app.use(githubWebhookRouter(deps.github));
  return app;
}
