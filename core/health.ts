import type { Request, Response } from 'express';

export type HealthCheck = () => Promise<void>;

/** GET /healthz: 200 when every check passes, 503 naming the failing ones otherwise. */
export function healthHandler(role: string, checks: Record<string, HealthCheck>) {
  return async (_req: Request, res: Response) => {
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          await withTimeout(check(), 2000);
          return [name, 'ok'] as const;
        } catch {
          return [name, 'failing'] as const;
        }
      }),
    );
    const ok = results.every(([, r]) => r === 'ok');
    res
      .status(ok ? 200 : 503)
      .set('cache-control', 'no-store')
      .json({ status: ok ? 'ok' : 'degraded', role, checks: Object.fromEntries(results) });
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
