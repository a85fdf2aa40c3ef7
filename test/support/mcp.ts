import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ApiKeyAuthenticator, createApiKey } from '../../core/api-keys.ts';
import { freePort } from '../../core/daemons/probes.ts';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { type Listening, listen } from '../../core/http.ts';
import { createLogger } from '../../core/log.ts';
import { Metrics, type MetricsAccess } from '../../core/metrics.ts';
import { SecretBox } from '../../core/secrets.ts';
import { createUser } from '../../core/users.ts';
import { createGitServer } from '../../git/git-server.ts';
import { createMcpApp } from '../../mcp/app.ts';
import type { AuthServerOptions } from '../../mcp/auth/router.ts';
import { scratchDir } from './scratch.ts';

/** The seed contract: these names are fixed. */
export const SEED_TOOLS = [
  'whoami',
  'create_service',
  'list_services',
  'get_service',
  'redeploy_service',
  'delete_service',
  'create_resource',
  'list_resources',
  'get_resource',
  'delete_resource',
  'create_repo',
  'get_git_token',
];

/** Tools issues added to the seed contract. */
export const ADDED_TOOLS = [
  'list_deployments',
  'rollback_service',
  'attach_resource',
  'detach_resource',
  'rotate_resource_credentials',
];

export type McpTestServer = {
  url: string;
  /** The embedded database's URL (other processes may open it too). */
  dbUrl: string;
  /** The server's public URL; its origin is the one browsers may call from. */
  origin: string;
  db: Database;
  secrets: SecretBox;
  /** Creates a user and an API key for it. */
  newUser: (email: string) => Promise<{ userId: string; key: string; prefix: string }>;
  close: () => Promise<void>;
};

/** The `server` role's app on a real port, with a fresh embedded database. */
export async function startMcpTestServer(
  options: {
    git?: Partial<{ maxPushBytes: number; maxRepoBytes: number; maxReposPerUser: number }>;
    /** OAuth authorization server options (clock, metadata fetching, sign-in methods). */
    oauth?: AuthServerOptions;
    /** Further browser origins allowed to call /mcp (e.g. a proxy's in front of it). */
    allowedOrigins?: string[];
    /** Counts into a fresh registry, served at /metrics with this access. */
    metrics?: MetricsAccess;
  } = {},
): Promise<McpTestServer> {
  const scratch = scratchDir('mcp');
  const url = `file:${path.join(scratch.dir, 'test.db')}`;
  await migrate(url);
  const db = await openDatabase(url);
  const secrets = new SecretBox(Buffer.alloc(32, 1));
  const log = createLogger({ level: 'silent' });
  let http: Listening | undefined;
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const app = createMcpApp({
    db: db.prisma,
    log,
    authenticator: new ApiKeyAuthenticator(db.prisma),
    secrets,
    publicUrl,
    allowedOrigins: options.allowedOrigins ?? [],
    ...(options.oauth ? { oauth: options.oauth } : {}),
    ...(options.metrics ? { metrics: new Metrics(), metricsAccess: options.metrics } : {}),
    health: { database: () => db.ping() },
    git: createGitServer({
      db: db.prisma,
      log,
      root: path.join(scratch.dir, 'git'),
      baseUrl: `${publicUrl}/git`,
      tokenTtlSeconds: 3600,
      maxReposPerUser: options.git?.maxReposPerUser ?? 100,
      limits: {
        maxPushBytes: options.git?.maxPushBytes ?? 200 * 1024 * 1024,
        maxRepoBytes: options.git?.maxRepoBytes ?? 1024 * 1024 * 1024,
      },
    }),
  });
  http = await listen(app, '127.0.0.1', port);
  return {
    url: `http://127.0.0.1:${http.port}/mcp`,
    dbUrl: url,
    origin: publicUrl,
    db,
    secrets,
    newUser: async (email) => {
      const user = await createUser(db.prisma, email);
      const { key, prefix } = await createApiKey(db.prisma, user.id, 'test');
      return { userId: user.id, key, prefix };
    },
    close: async () => {
      try {
        await http?.close();
        await db.close();
      } finally {
        scratch.cleanup();
      }
    },
  };
}

/** An MCP SDK client connected over Streamable HTTP with a Bearer key. */
export async function connectClient(url: string, key: string, headers: Record<string, string> = {}) {
  const client = new Client({ name: 'deploy-mcp-tests', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${key}`, ...headers } },
  });
  await client.connect(transport);
  return client;
}

/** Calls a tool and returns its result (typed as a plain CallToolResult). */
export async function call(client: Client, name: string, args: Record<string, unknown> = {}) {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

export function text(result: CallToolResult): string {
  return result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}
