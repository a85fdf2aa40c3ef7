import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** GET `url`, optionally with another Host header (fetch would drop it: Host is forbidden there). */
export function httpGet(url: string, host?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: host ? { host } : {}, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Polls `probe` until `ok` holds (errors count as not yet), failing after `ms`. */
export async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (ok(v)) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(
    `condition not met within ${ms} ms; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
  );
}
