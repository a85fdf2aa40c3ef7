import path from 'node:path';
import { freePort, httpOk } from './probes.ts';
import { type Daemon, DaemonStartError, keptPorts, startDaemon } from './supervise.ts';

export type TemporalDevServerOptions = {
  /** Path to the `temporal` CLI. */
  bin: string;
  /** Directory for the dev server's SQLite file and log. */
  dir: string;
  /** gRPC frontend port (clients and workers connect here). */
  port: number;
  namespace: string;
  ip?: string;
};

export type TemporalDevServer = Daemon & { address: string };

/** Starts `temporal server start-dev` (the real Temporal server, SQLite-backed) and waits for it. */
export async function startTemporalDevServer(o: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const ip = o.ip ?? '127.0.0.1';
  // The HTTP and metrics ports are picked at the first start and kept while that server runs,
  // so a restarted deploy-mcp adopts it (core/daemons/supervise.ts).
  const pidFile = path.join(o.dir, 'temporal.pid');
  const kept = keptPorts(pidFile);
  // A port found free can be taken before Temporal binds it (other processes pick ports too):
  // fresh ones are picked, at most three times.
  for (let attempt = 1; ; attempt++) {
    const httpPort = kept?.http ?? (await freePort());
    const metricsPort = kept?.metrics ?? (await freePort());
    try {
      return await startOnPorts(o, ip, pidFile, httpPort, metricsPort);
    } catch (err) {
      if (
        kept ||
        attempt >= 3 ||
        !(err instanceof DaemonStartError) ||
        !/address already in use/.test(err.message)
      )
        throw err;
    }
  }
}

async function startOnPorts(
  o: TemporalDevServerOptions,
  ip: string,
  pidFile: string,
  httpPort: number,
  metricsPort: number,
): Promise<TemporalDevServer> {
  const daemon = await startDaemon({
    name: 'temporal',
    pidFile,
    ports: { http: httpPort, metrics: metricsPort },
    command: o.bin,
    args: [
      'server',
      'start-dev',
      '--headless',
      '--ip',
      ip,
      '--port',
      String(o.port),
      '--http-port',
      String(httpPort),
      '--metrics-port',
      String(metricsPort),
      '--db-filename',
      path.join(o.dir, 'temporal.db'),
      '--namespace',
      o.namespace,
      '--log-level',
      'warn',
    ],
    logFile: path.join(o.dir, 'temporal.log'),
    // The namespace answers over the HTTP API only once the frontend is fully up.
    ready: () => httpOk({ url: `http://${ip}:${httpPort}/api/v1/namespaces/${o.namespace}` }),
    readyTimeoutMs: 90_000,
  });
  return { ...daemon, address: `${ip}:${o.port}` };
}
