// MCP front-door figures (printed by npm run bench, never asserted).
//   Latency: whoami and list_services through the SDK Client over HTTP, at 1 and 50
//   concurrent clients (each its own user and API key), p50/p99.
//   Auth cost: ApiKeyAuthenticator.authenticate per call, in process.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { ApiKeyAuthenticator } from '../core/api-keys.ts';
import { openDatabase } from '../core/db/client.ts';
import { call, connectClient } from '../test/support/mcp.ts';

const CONCURRENCY = [1, 50];
const REQUESTS_PER_LEVEL = 1000;
const SERVICES_PER_USER = 10;
const USERS = Math.max(...CONCURRENCY);
const tsxLoader = path.resolve(import.meta.dirname, '../node_modules/tsx/dist/loader.mjs');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function summarize(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), n: s.length };
}

/** Starts bench/mcp-server.ts in a child process and reads its JSON line. */
async function startServerProcess() {
  const child = spawn(
    process.execPath,
    [
      '--import',
      tsxLoader,
      path.join(import.meta.dirname, 'mcp-server.ts'),
      String(USERS),
      String(SERVICES_PER_USER),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const [line] = (await once(readline.createInterface({ input: child.stdout }), 'line')) as [string];
  const info = JSON.parse(line) as { url: string; dbUrl: string; keys: string[] };
  return { ...info, stop: () => child.stdin.end() };
}

export async function benchMcp() {
  const server = await startServerProcess();
  const db = await openDatabase(server.dbUrl);
  try {
    const clients = await Promise.all(server.keys.map((key) => connectClient(server.url, key)));
    console.log(
      `MCP tool latency: SDK clients over HTTP to a server in its own process (embedded SQLite, ` +
        `${SERVICES_PER_USER} services per user, ~${REQUESTS_PER_LEVEL} calls per row)`,
    );
    console.log('tool           clients   p50 ms   p99 ms   calls/s');
    for (const tool of ['whoami', 'list_services']) {
      for (const concurrency of CONCURRENCY) {
        for (const c of clients.slice(0, concurrency)) await call(c, tool); // warm-up
        const samples: number[] = [];
        const perClient = Math.ceil(REQUESTS_PER_LEVEL / concurrency);
        const started = performance.now();
        await Promise.all(
          clients.slice(0, concurrency).map(async (c) => {
            for (let i = 0; i < perClient; i++) {
              const t0 = performance.now();
              const res = await call(c, tool);
              samples.push(performance.now() - t0);
              if (res.isError) throw new Error(`${tool} failed during the benchmark`);
            }
          }),
        );
        const wall = (performance.now() - started) / 1000;
        const { p50, p99, n } = summarize(samples);
        console.log(
          `${tool.padEnd(14)} ${String(concurrency).padStart(7)} ${p50.toFixed(2).padStart(8)} ${p99.toFixed(2).padStart(8)} ${(n / wall).toFixed(0).padStart(9)}`,
        );
      }
    }
    await Promise.all(clients.map((c) => c.close()));

    const auth = new ApiKeyAuthenticator(db.prisma);
    const key = server.keys[0] ?? '';
    for (let i = 0; i < 200; i++) await auth.authenticate(key);
    const samples: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const t0 = performance.now();
      if (!(await auth.authenticate(key))) throw new Error('auth failed');
      samples.push((performance.now() - t0) * 1000);
    }
    const a = summarize(samples);
    console.log(
      '\nPer-request auth (ApiKeyAuthenticator.authenticate: indexed read + SHA-256 + constant-time compare)',
    );
    console.log(`  p50 ${a.p50.toFixed(0)} µs   p99 ${a.p99.toFixed(0)} µs   (${a.n} calls)`);
  } finally {
    await db.close();
    server.stop();
  }
}
