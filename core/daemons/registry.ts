import { execFileSync } from 'node:child_process';
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

/**
 * Starts a local OCI registry (CNCF distribution) on 127.0.0.1, storing blobs under `dir`. Before
 * a new process starts (never under a running one, which it would corrupt), its garbage
 * collection frees the blobs of the images deleted since (workers/deploy/registry-prune.ts).
 */
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
    beforeSpawn: () => garbageCollect(o.bin, configFile, path.join(o.dir, 'registry.log')),
    logFile: path.join(o.dir, 'registry.log'),
    ready: () => httpOk({ url: `http://${host}/v2/` }),
  });
  return { ...daemon, host };
}

/**
 * `registry garbage-collect`: deletes the blobs no manifest references any more (bounded to
 * 5 minutes). Untagged manifests are kept: releases run images by digest. A failure is written
 * to the registry's log and the start goes on (the space is freed at a later start).
 */
function garbageCollect(bin: string, configFile: string, logFile: string) {
  let output: string;
  try {
    output = execFileSync(bin, ['garbage-collect', configFile], {
      timeout: 300_000,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    output = `garbage-collect failed: ${err instanceof Error ? err.message : String(err)}`;
  }
  const swept = output.split('\n').filter((l) => l.startsWith('blob eligible for deletion')).length;
  fs.appendFileSync(logFile, `${new Date().toISOString()} garbage-collect: ${swept} blob(s) deleted\n`);
}
