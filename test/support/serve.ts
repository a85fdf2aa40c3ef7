import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { freePort } from '../../core/daemons/probes.ts';
import { tenantWorkRoot } from '../../tenant-stacks/from-config.ts';
import { connectClient } from './mcp.ts';
import { repoRoot } from './scratch.ts';

const exec = promisify(execFile);

export const CLI = path.join(repoRoot, 'bin/deploy-mcp');

export type ServeProcess = {
  env: NodeJS.ProcessEnv;
  ports: {
    server: number;
    deployer: number;
    temporal: number;
    registry: number;
    ingress: number;
    /** The embedded PostgreSQL's (resources); a free one unless given. */
    postgres?: number;
  };
  /** Everything the process printed so far (JSON log lines). */
  output: () => string;
  exited: Promise<number | null>;
  child: ChildProcess;
  /** SIGTERM, wait for the exit, remove the tenant stacks' work folders of its data dir. */
  stop: () => Promise<void>;
  /** True once the process has exited (e.g. it died when Temporal became unreachable). */
  hasExited: () => boolean;
  /**
   * The same serve again (data dir, ports, settings) when this one has exited; this one while it
   * runs. Call it before each test so one test's crash does not fail the tests after it.
   */
  revive: () => Promise<ServeProcess>;
};

export type ServeOptions = {
  /** Default "all" (what npm start runs). */
  roles?: string;
  /** Settings on top of the defaults (e.g. an external Temporal or runtime). */
  env?: NodeJS.ProcessEnv;
  /** Ports to use instead of free ones (e.g. a restart on the ports of an earlier run). */
  ports?: ServeProcess['ports'];
};

/**
 * `deploy-mcp serve` on free ports with its state in `dataDir`, in a process group of its own
 * (so a test can kill it with everything it started); resolves once it logs "ready".
 */
export async function startServe(dataDir: string, o: ServeOptions = {}): Promise<ServeProcess> {
  // Distinct ports: a port just released may be handed out again by the next freePort().
  const taken = new Set<number>();
  const distinctPort = async () => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) return taken.add(port) && port;
    }
  };
  const ports = o.ports ?? {
    server: await distinctPort(),
    deployer: await distinctPort(),
    temporal: await distinctPort(),
    registry: await distinctPort(),
    ingress: await distinctPort(),
  };
  // Every serve gets its own PostgreSQL port: several run on this machine at once.
  const postgresPort = ports.postgres ?? (await distinctPort());
  ports.postgres = postgresPort;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DEPLOY_MCP_DATA_DIR: dataDir,
    DEPLOY_MCP_PORT: String(ports.server),
    DEPLOY_MCP_DEPLOYER_PORT: String(ports.deployer),
    DEPLOY_MCP_TEMPORAL_PORT: String(ports.temporal),
    DEPLOY_MCP_REGISTRY_PORT: String(ports.registry),
    DEPLOY_MCP_INGRESS_PORT: String(ports.ingress),
    DEPLOY_MCP_POSTGRES_PORT: String(postgresPort),
    DEPLOY_MCP_PUBLIC_URL: `http://127.0.0.1:${ports.server}`,
    DEPLOY_MCP_TOOLS_DIR: path.join(repoRoot, '.tools'),
    ...o.env,
  };
  let output = '';
  const child = spawn(CLI, ['serve', '--role', o.roles ?? 'all'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout?.on('data', (c) => {
    output += c;
  });
  child.stderr?.on('data', (c) => {
    output += c;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 120_000;
  while (!output.includes('"msg":"ready"')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`serve did not start:\n${output}`);
    await sleep(200);
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(tenantWorkRoot(dataDir), { recursive: true, force: true });
  };
  const hasExited = () => child.exitCode !== null || child.signalCode !== null;
  const self: ServeProcess = {
    env,
    ports,
    output: () => output,
    exited,
    child,
    stop,
    hasExited,
    revive: async () => {
      if (!hasExited()) return self;
      return startServe(dataDir, { ...o, ports, env: { ...o.env, ...env } });
    },
  };
  return self;
}

/** Creates `email`'s account and an API key with the CLI, then an MCP client with that key. */
export async function connectAgent(serve: ServeProcess, email: string): Promise<Client> {
  const env = serve.env;
  await exec(CLI, ['users', 'create', email], { env });
  const { stdout } = await exec(CLI, ['keys', 'create', email], { env });
  return connectClient(`${env.DEPLOY_MCP_PUBLIC_URL}/mcp`, stdout.trim().split('\n').at(-1) ?? '');
}
