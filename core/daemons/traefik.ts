import fs from 'node:fs';
import path from 'node:path';
import { freePort, httpOk } from './probes.ts';
import { type Daemon, keptPorts, startDaemon } from './supervise.ts';

export type TraefikOptions = {
  /** Path to `traefik`. */
  bin: string;
  dir: string;
  /** Port of the `web` entry point that serves http://<name>.localhost:<port>. */
  port: number;
  /** Listen address of the entry point; loopback unless the operator opens it up. */
  ip?: string;
};

export type Traefik = Daemon & {
  /** Directory watched by the file provider; one YAML file per route. */
  routesDir: string;
  /** Base URL of Traefik's API (loopback only): what configuration it serves right now. */
  apiUrl: string;
};

/**
 * Traefik's static configuration as the product runs it: the `web` entry point for apps, and
 * ping (and the API, when asked) on a loopback-only `traefik` entry point; `providers` are the
 * YAML lines below `providers:`.
 */
export function traefikConfig(o: {
  web: string;
  adminPort: number;
  api?: boolean;
  providers: string[];
}): string {
  return [
    'entryPoints:',
    '  web:',
    `    address: "${o.web}"`,
    '  traefik:',
    `    address: "127.0.0.1:${o.adminPort}"`,
    'ping:',
    '  entryPoint: traefik',
    ...(o.api ? ['api:', '  insecure: true', '  dashboard: false'] : []),
    'providers:',
    ...o.providers,
    'log:',
    '  level: WARN',
    'global:',
    '  checkNewVersion: false',
    '  sendAnonymousUsage: false',
    '',
  ].join('\n');
}

/**
 * The file provider watching `routesDir`, one YAML file per route. Traefik applies a provider's
 * new configuration at most once per `providersThrottleDuration` (default 2 s): a route switch
 * that came less than 2 s after another change (any service's) waited up to 2 s before it
 * served, and a deploy's new release with it. 100 ms still coalesces a burst of writes.
 */
export function routesProvider(routesDir: string): string[] {
  return [
    '  providersThrottleDuration: 100ms',
    '  file:',
    `    directory: "${routesDir}"`,
    '    watch: true',
  ];
}

/** Starts Traefik with a file provider watching `<dir>/routes`. */
export async function startTraefik(o: TraefikOptions): Promise<Traefik> {
  const routesDir = path.join(o.dir, 'routes');
  fs.mkdirSync(routesDir, { recursive: true });
  // The ping port is picked at the first start and kept while that Traefik runs, so a
  // restarted deploy-mcp adopts it and apps keep being served (core/daemons/supervise.ts).
  const pidFile = path.join(o.dir, 'traefik.pid');
  const pingPort = keptPorts(pidFile)?.ping ?? (await freePort());
  const configFile = path.join(o.dir, 'traefik.yml');
  fs.writeFileSync(
    configFile,
    traefikConfig({
      web: `${o.ip ?? '127.0.0.1'}:${o.port}`,
      adminPort: pingPort,
      // The (read-only) API too: the route provider reads it to know when a route switch is
      // live before the old release goes.
      api: true,
      providers: routesProvider(routesDir),
    }),
  );
  const daemon = await startDaemon({
    name: 'traefik',
    command: o.bin,
    args: ['--configFile', configFile],
    configFiles: [configFile],
    pidFile,
    ports: { ping: pingPort },
    logFile: path.join(o.dir, 'traefik.log'),
    ready: () => httpOk({ url: `http://127.0.0.1:${pingPort}/ping` }),
  });
  return { ...daemon, routesDir, apiUrl: `http://127.0.0.1:${pingPort}` };
}
