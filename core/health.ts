import fs from 'node:fs';
import type { Request, Response } from 'express';

export type HealthCheck = () => Promise<void>;

/** A failing check's reason, safe to show on /healthz (an operator acts on it). */
export class HealthProblem extends Error {
  override name = 'HealthProblem';
}

/**
 * GET /healthz: 200 when every check passes, 503 naming the failing ones otherwise, with a
 * `reason` ("disk: 3 MiB free on /var/lib/deploy-mcp (below 512 MiB)").
 */
export function healthHandler(role: string, checks: Record<string, HealthCheck>) {
  return async (_req: Request, res: Response) => {
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          await withTimeout(check(), 2000);
          return [name, 'ok', undefined] as const;
        } catch (err) {
          const why = err instanceof HealthProblem ? err.message : 'failing';
          return [name, 'failing', `${name}: ${why}`] as const;
        }
      }),
    );
    const ok = results.every(([, r]) => r === 'ok');
    const reasons = results.flatMap(([, , why]) => (why ? [why] : []));
    res
      .status(ok ? 200 : 503)
      .set('cache-control', 'no-store')
      .json({
        status: ok ? 'ok' : 'degraded',
        role,
        checks: Object.fromEntries(results.map(([name, r]) => [name, r])),
        ...(ok ? {} : { reason: reasons.join('; ') }),
      });
  };
}

/**
 * Fails while the file system holding `path` has less than `minFreeMb` MiB free (0: never), so
 * an operator sees a filling disk before deploys and tools fail on it.
 */
export function diskSpaceCheck(o: { path: string; minFreeMb: number }): HealthCheck {
  return async () => {
    const s = await fs.promises.statfs(o.path);
    const freeMb = Math.floor((s.bavail * s.bsize) / (1024 * 1024));
    if (freeMb < o.minFreeMb)
      throw new HealthProblem(`${freeMb} MiB free on ${o.path} (below ${o.minFreeMb} MiB)`);
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
