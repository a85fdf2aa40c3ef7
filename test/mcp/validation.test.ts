import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, connectClient, type McpTestServer, startMcpTestServer, text } from '../support/mcp.ts';

const long = (n: number) => 'a'.repeat(n);
const ok = { name: 'web', repo: 'app' };

// [tool, arguments, field the message must name]
const BAD_INPUTS: [string, Record<string, unknown>, string][] = [
  ['create_service', { repo: 'app' }, 'name'],
  ['create_service', { ...ok, name: 'Web' }, 'name'],
  ['create_service', { ...ok, name: '1web' }, 'name'],
  ['create_service', { ...ok, name: 'web-' }, 'name'],
  ['create_service', { ...ok, name: 'we_b' }, 'name'],
  ['create_service', { ...ok, name: long(64) }, 'name'],
  ['create_service', { ...ok, name: 42 }, 'name'],
  ['create_service', { name: 'web' }, 'repo'],
  ['create_service', { ...ok, repo: '' }, 'repo'],
  ['create_service', { ...ok, repo: '../etc/passwd' }, 'repo'],
  ['create_service', { ...ok, repo: 'http://example.com/x.git' }, 'repo'],
  ['create_service', { ...ok, repo: 'my app' }, 'repo'],
  ['create_service', { ...ok, host: 'gitlab' }, 'host'],
  ['create_service', { ...ok, branch: '' }, 'branch'],
  ['create_service', { ...ok, branch: 'feature/../main' }, 'branch'],
  ['create_service', { ...ok, branch: '-rf' }, 'branch'],
  ['create_service', { ...ok, branch: 'a b' }, 'branch'],
  ['create_service', { ...ok, project: 'Prod' }, 'project'],
  ['create_service', { ...ok, build_pack: 'heroku' }, 'build_pack'],
  ['create_service', { ...ok, port: 0 }, 'port'],
  ['create_service', { ...ok, port: 65536 }, 'port'],
  ['create_service', { ...ok, port: 80.5 }, 'port'],
  ['create_service', { ...ok, port: '3000' }, 'port'],
  ['create_service', { ...ok, env_vars: { '1BAD': 'x' } }, 'env_vars'],
  ['create_service', { ...ok, env_vars: { 'BAD-KEY': 'x' } }, 'env_vars'],
  ['create_service', { ...ok, env_vars: { KEY: 5 } }, 'env_vars'],
  ['create_service', { ...ok, env_vars: { PORT: '80' } }, 'env_vars'],
  ['create_service', { ...ok, env_vars: 'KEY=value' }, 'env_vars'],
  [
    'create_service',
    { ...ok, env_vars: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`K${i}`, 'v'])) },
    'env_vars',
  ],
  ['create_service', { ...ok, memory: '3Gi' }, 'memory'],
  ['create_service', { ...ok, memory: 512 }, 'memory'],
  ['create_service', { ...ok, cpu: '8' }, 'cpu'],
  ['create_service', { ...ok, start_command: 'npm start\nrm -rf /' }, 'start_command'],
  ['create_service', { ...ok, build_command: long(1001) }, 'build_command'],
  ['create_service', { ...ok, install_command: '' }, 'install_command'],
  ['get_service', {}, 'name'],
  ['get_service', { name: 'web', deploy_log_lines: 501 }, 'deploy_log_lines'],
  ['get_service', { name: 'web', runtime_log_lines: -1 }, 'runtime_log_lines'],
  ['get_service', { name: 'web', include_env: 'yes' }, 'include_env'],
  ['get_service', { name: 'web', deployment: '../x' }, 'deployment'],
  ['list_services', { limit: 0 }, 'limit'],
  ['list_services', { limit: 101 }, 'limit'],
  ['list_services', { cursor: 'not a cursor!' }, 'cursor'],
  ['list_services', { cursor: 'bm90LWFuLWlk' }, 'cursor'],
  ['redeploy_service', { name: '' }, 'name'],
  ['delete_service', { name: 'a.b' }, 'name'],
  ['list_deployments', { name: 'web', limit: 101 }, 'limit'],
  ['list_deployments', { name: 'web', cursor: 'bm90LWFuLWlk' }, 'cursor'],
  ['rollback_service', { name: 'web', release: 0 }, 'release'],
  ['rollback_service', { name: 'web', release: 1.5 }, 'release'],
  ['rollback_service', { name: 'web', release: 'v1' }, 'release'],
  ['create_resource', { name: 'db', type: 'mysql' }, 'type'],
  ['create_resource', { name: 'db', size: 'huge' }, 'size'],
  ['create_resource', { name: 'db', region: 'mars' }, 'region'],
  ['create_resource', { name: 'DB' }, 'name'],
  ['list_resources', { limit: 1000 }, 'limit'],
  ['get_resource', { name: 'db', include_secrets: 1 }, 'include_secrets'],
  ['delete_resource', {}, 'name'],
  ['delete_resource', { name: 'db', detach: 'yes' }, 'detach'],
  ['create_resource', { name: 'db', type: 'turso' }, 'type'],
  ['attach_resource', { service: 'web' }, 'resource'],
  ['attach_resource', { service: 'Web', resource: 'db' }, 'service'],
  ['detach_resource', { service: 'web', resource: 'db_1' }, 'resource'],
  ['rotate_resource_credentials', {}, 'name'],
  ['create_service', { name: 'web', repo: 'web', resources: 'db' }, 'resources'],
  ['create_service', { name: 'web', repo: 'web', resources: ['DB'] }, 'resources'],
  ['create_service', { name: 'web', repo: 'web', database: { type: 'mysql' } }, 'database'],
  ['create_service', { name: 'web', repo: 'web', database: 'postgres' }, 'database'],
  ['create_repo', { name: 'my_repo' }, 'name'],
  ['create_repo', { name: 'repo', description: long(501) }, 'description'],
  ['create_repo', { name: 'repo', host: 'bitbucket' }, 'host'],
  ['get_git_token', { name: '../x' }, 'name'],
];

describe('input validation', () => {
  let srv: McpTestServer;
  let client: Client;
  beforeAll(async () => {
    srv = await startMcpTestServer();
    client = await connectClient(srv.url, (await srv.newUser('validate@example.com')).key);
  });
  afterAll(async () => {
    await client?.close();
    await srv.close();
  });

  it('has a table of at least 40 bad inputs across the tools', () => {
    expect(BAD_INPUTS.length).toBeGreaterThanOrEqual(40);
    expect(new Set(BAD_INPUTS.map((b) => b[0])).size).toBeGreaterThanOrEqual(10);
  });

  it.each(BAD_INPUTS)('%s %j is refused, naming %s', async (tool, args, field) => {
    const res = await call(client, tool, args);
    expect(res.isError).toBe(true);
    const message = text(res);
    expect(message).toContain(field);
    expect(message).not.toMatch(/\n\s+at |node_modules|Prisma/);
    expect(message).not.toMatch(/not available yet|not found/);
  });
});
