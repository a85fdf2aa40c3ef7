import express from 'express';
import { type HealthCheck, healthHandler } from '../core/health.ts';

export type DeployerAppDeps = { health: Record<string, HealthCheck> };

/** The `deployer-server` role's express app (webhooks and /healthz). */
export function createDeployerApp(deps: DeployerAppDeps) {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', healthHandler('deployer-server', deps.health));
  return app;
}
