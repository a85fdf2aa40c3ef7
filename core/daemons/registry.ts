import fs from 'node:fs';
import path from 'node:path';
import { httpOk } from './probes.ts';
import { type Daemon, startDaemon } from './supervise.ts';

export type RegistryOptions = {
  /** Path to the distribution registry binary (Debian: docker-registry). */
  bin: string;
  dir: string;
  port: number;
};

export type Registry = Daemon & { host: string };

/** Starts a local OCI registry (CNCF distribution) on 127.0.0.1, storing blobs under `dir`. */
export async function startRegistry(o: RegistryOptions): Promise<Registry> {
  fs.mkdirSync(o.dir, { recursive: true });
  const configFile = path.join(o.dir, 'config.yml');
  fs.writeFileSync(
    configFile,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(o.dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${o.port}`,
      '',
    ].join('\n'),
  );
  const host = `127.0.0.1:${o.port}`;
  const daemon = await startDaemon({
    name: 'registry',
    command: o.bin,
    args: ['serve', configFile],
    configFiles: [configFile],
    logFile: path.join(o.dir, 'registry.log'),
    ready: () => httpOk({ url: `http://${host}/v2/` }),
  });
  return { ...daemon, host };
}
