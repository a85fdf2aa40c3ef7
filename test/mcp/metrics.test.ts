import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { call, connectClient, type McpTestServer, startMcpTestServer } from '../support/mcp.ts';
import { sample, scrape } from '../support/metrics.ts';

const TOKEN = 'metrics-token-0123456789abcdef';

describe('GET /metrics on the server port', () => {
  const servers: McpTestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  it('is not served by default (404), even with a token', async () => {
    const access = loadConfig({}).metrics;
    expect(access).toEqual({ mode: 'off' });
    const srv = await startMcpTestServer({ metrics: access });
    servers.push(srv);
    expect((await scrape(srv.origin)).status).toBe(404);
    expect((await scrape(srv.origin, TOKEN)).status).toBe(404);
  });

  it('DEPLOY_MCP_METRICS=public serves it to anyone', async () => {
    const srv = await startMcpTestServer({ metrics: loadConfig({ DEPLOY_MCP_METRICS: 'public' }).metrics });
    servers.push(srv);
    const res = await scrape(srv.origin);
    expect(res.status).toBe(200);
    expect(res.body).toContain('# TYPE deploy_mcp_tool_duration_seconds histogram');
  });
});

describe('GET /metrics with DEPLOY_MCP_METRICS_TOKEN', () => {
  let srv: McpTestServer;
  let client: Client;
  let user: { userId: string; key: string; prefix: string };
  const email = 'metrics-user@example.com';

  beforeAll(async () => {
    srv = await startMcpTestServer({ metrics: loadConfig({ DEPLOY_MCP_METRICS_TOKEN: TOKEN }).metrics });
    user = await srv.newUser(email);
    client = await connectClient(srv.url, user.key);
  });
  afterAll(async () => {
    await client?.close();
    await srv?.close();
  });

  it('answers 401 without the token, with a wrong one, or in another scheme; 200 with it', async () => {
    for (const [token, scheme] of [
      [undefined, 'Bearer'],
      ['', 'Bearer'],
      [`${TOKEN}x`, 'Bearer'],
      [TOKEN.slice(0, -1), 'Bearer'],
      [TOKEN, 'Basic'],
      [user.key, 'Bearer'],
    ] as const) {
      const res = await scrape(srv.origin, token, scheme);
      expect(res.status, `${scheme} ${token}`).toBe(401);
      expect(res.body).not.toContain('deploy_mcp_');
    }
    const ok = await scrape(srv.origin, TOKEN);
    expect(ok.status).toBe(200);
    expect(ok.type).toMatch(/^text\/plain; version=0\.0\.4/);
    // prom-client's default process metrics.
    expect(ok.body).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(ok.body).toMatch(/^nodejs_heap_size_used_bytes \d/m);
  });

  it('counts tool calls per tool and outcome, requests and auth failures, after real calls', async () => {
    const before = (await scrape(srv.origin, TOKEN)).body;
    expect((await call(client, 'whoami')).isError).toBeFalsy();
    expect((await call(client, 'whoami')).isError).toBeFalsy();
    expect((await call(client, 'get_service', { name: 'no-such-service' })).isError).toBe(true);
    // Requests refused before any tool runs.
    const noHeader = await fetch(srv.url, { method: 'POST', body: '{}' });
    expect(noHeader.status).toBe(401);
    const badKey = await fetch(srv.url, {
      method: 'POST',
      headers: {
        authorization: 'Bearer dk_live_notarealkeynotarealkeynotarealk',
        'content-type': 'application/json',
      },
      body: '{}',
    });
    expect(badKey.status).toBe(401);
    const after = (await scrape(srv.origin, TOKEN)).body;

    const delta = (name: string, labels: Record<string, string> = {}) =>
      sample(after, name, labels) - sample(before, name, labels);
    expect(delta('deploy_mcp_tool_duration_seconds_count', { tool: 'whoami', outcome: 'ok' })).toBe(2);
    expect(delta('deploy_mcp_tool_duration_seconds_count', { tool: 'get_service', outcome: 'error' })).toBe(
      1,
    );
    expect(delta('deploy_mcp_tool_duration_seconds_count', { tool: 'whoami', outcome: 'fault' })).toBe(0);
    expect(delta('deploy_mcp_tool_duration_seconds_sum', { tool: 'whoami', outcome: 'ok' })).toBeGreaterThan(
      0,
    );
    // Every call falls in the +Inf bucket.
    expect(
      delta('deploy_mcp_tool_duration_seconds_bucket', { tool: 'whoami', outcome: 'ok', le: '+Inf' }),
    ).toBe(2);
    expect(delta('deploy_mcp_auth_failures_total', { reason: 'missing' })).toBe(1);
    expect(delta('deploy_mcp_auth_failures_total', { reason: 'invalid' })).toBe(1);
    expect(delta('deploy_mcp_requests_total', { outcome: 'unauthenticated' })).toBe(2);
    // The client's calls (and no others): three tools/call requests at least.
    expect(delta('deploy_mcp_requests_total', { outcome: 'ok' })).toBeGreaterThanOrEqual(3);
  });

  it('counts a tool fault (the database lost a table the tool reads)', async () => {
    const before = (await scrape(srv.origin, TOKEN)).body;
    await srv.db.prisma.$executeRawUnsafe('ALTER TABLE "Project" RENAME TO "Project_metrics_test"');
    try {
      const result = await call(client, 'whoami');
      expect(result.isError).toBe(true);
    } finally {
      await srv.db.prisma.$executeRawUnsafe('ALTER TABLE "Project_metrics_test" RENAME TO "Project"');
    }
    expect((await call(client, 'whoami')).isError).toBeFalsy();
    const after = (await scrape(srv.origin, TOKEN)).body;
    const delta = (name: string, labels: Record<string, string>) =>
      sample(after, name, labels) - sample(before, name, labels);
    expect(delta('deploy_mcp_tool_faults_total', { tool: 'whoami', kind: 'internal' })).toBe(1);
    expect(delta('deploy_mcp_tool_duration_seconds_count', { tool: 'whoami', outcome: 'fault' })).toBe(1);
    expect(delta('deploy_mcp_tool_duration_seconds_count', { tool: 'whoami', outcome: 'ok' })).toBe(1);
  });

  it('names no user, email, key or token', async () => {
    const { body } = await scrape(srv.origin, TOKEN);
    expect(body.length).toBeGreaterThan(1000);
    for (const secret of [email, 'example.com', user.userId, user.prefix, user.key, TOKEN, 'dk_live_'])
      expect(body).not.toContain(secret);
    // Labels hold tool names and outcome enums only.
    const labels = new Set([...body.matchAll(/(\w+)="[^"]*"/g)].map((m) => m[1]));
    for (const l of labels)
      expect([
        'tool',
        'outcome',
        'kind',
        'reason',
        'le',
        'version',
        'major',
        'minor',
        'patch',
        'space',
        'type',
        'kind',
      ]).toContain(l);
  });
});
