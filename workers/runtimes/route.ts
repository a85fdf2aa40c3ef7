import http from 'node:http';
import { RouteTimeoutError } from './runtime.ts';

/**
 * Waits until the ingress (Traefik, on `port` of this host) routes `host` to the app. Only
 * Traefik's own answers mean "not yet": its 404 page (no router) and 502/503 (no reachable
 * server); an app may answer 404 itself.
 */
export async function waitForRoute(
  port: number,
  host: string,
  onWait: () => void,
  timeoutMs = 15_000,
  /** The release's health path: the same request its health check made. */
  path = '/',
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    onWait();
    const status = await new Promise<number>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path, headers: { host }, timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
    });
    if (status && status !== 404 && status !== 502 && status !== 503) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new RouteTimeoutError(`the route for ${host} did not start serving within ${timeoutMs / 1000} s`);
}
