import fs from 'node:fs';
import path from 'node:path';
import { freePort, httpOk } from './probes.ts';
import { type Daemon, startDaemon } from './supervise.ts';

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
};

/** Starts Traefik with a file provider watching `<dir>/routes`. */
export async function startTraefik(o: TraefikOptions): Promise<Traefik> {
  const routesDir = path.join(o.dir, 'routes');
  fs.mkdirSync(routesDir, { recursive: true });
  const pingPort = await freePort();
  const configFile = path.join(o.dir, 'traefik.yml');
  fs.writeFileSync(
    configFile,
    [
      'entryPoints:',
      '  web:',
      `    address: "${o.ip ?? '127.0.0.1'}:${o.port}"`,
      '  ping:',
      `    address: "127.0.0.1:${pingPort}"`,
      'ping:',
      '  entryPoint: ping',
      'providers:',
      '  file:',
      `    directory: "${routesDir}"`,
      '    watch: true',
      'log:',
      '  level: WARN',
      'global:',
      '  checkNewVersion: false',
      '  sendAnonymousUsage: false',
      '',
    ].join('\n'),
  );
  const daemon = await startDaemon({
    name: 'traefik',
    command: o.bin,
    args: ['--configFile', configFile],
    logFile: path.join(o.dir, 'traefik.log'),
    ready: () => httpOk({ url: `http://127.0.0.1:${pingPort}/ping` }),
  });
  return { ...daemon, routesDir };
}
