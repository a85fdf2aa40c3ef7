import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ANSWER_CHARS } from '../../mcp/answer-size.ts';
import { call, connectClient, type McpTestServer, startMcpTestServer, text } from '../support/mcp.ts';

/** `n` characters of varied text (so nothing compresses into a repeat). */
function filler(n: number, seed: string): string {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `${seed}-${i.toString(36)} `;
  return s.slice(0, n);
}

/** A log of `lines` lines of `width` characters, numbered so the newest can be recognised. */
function log(lines: number, width: number, what: string): string {
  return Array.from({ length: lines }, (_, i) =>
    `${what} line ${i + 1} ${filler(width, what)}`.slice(0, width),
  ).join('\n');
}

describe('every default answer fits 16,000 characters, with every field at its maximum', () => {
  let srv: McpTestServer;
  let client: Client;
  let userId: string;
  let projectId: string;

  beforeAll(async () => {
    srv = await startMcpTestServer();
    const user = await srv.newUser('sizes@example.com');
    userId = user.userId;
    client = await connectClient(srv.url, user.key);
    projectId = (
      await srv.db.prisma.project.findUniqueOrThrow({ where: { userId_name: { userId, name: 'default' } } })
    ).id;
    const prisma = srv.db.prisma;
    // 100 services, each with the longest settings the tools accept.
    for (let i = 0; i < 100; i++) {
      const name = `${'s'.repeat(58)}-${String(i).padStart(3, '0')}`;
      const service = await prisma.service.create({
        data: {
          userId,
          projectId,
          name,
          liveKey: `${projectId}/${name}`,
          stackName: `st-sizes-${i}`,
          repoUrl: filler(2048, 'repo'),
          branch: filler(255, 'branch'),
          installCommand: filler(1000, 'install'),
          buildCommand: filler(1000, 'build'),
          startCommand: filler(1000, 'start'),
          url: `http://${name}-sizes.localhost:8080`,
          healthCheckPath: `/${filler(199, 'h').replaceAll(' ', '_')}`,
        },
      });
      if (i > 0) continue;
      // The first one: 100 env vars of the longest names and values, and 100 deployments with
      // 30 KB reasons, 500-line logs of 2,000-character lines.
      const env = Object.fromEntries(
        Array.from({ length: 100 }, (_, k) => [
          `V${String(k).padStart(3, '0')}_${'X'.repeat(123)}`,
          filler(32_768, `value${k}`),
        ]),
      );
      await prisma.service.update({
        where: { id: service.id },
        data: { envEncrypted: srv.secrets.sealJson(env, `service:${service.id}:env`) },
      });
      const reason = [
        'the build failed at step "npm ci": its own error lines follow',
        ...Array.from({ length: 200 }, () => 'npm ERR! the same line again and again'),
        ...Array.from({ length: 300 }, (_, k) => `cause ${k} ${filler(100, 'cause')}`),
      ].join('\n');
      for (let d = 0; d < 100; d++) {
        await prisma.deployment.create({
          data: {
            serviceId: service.id,
            userId,
            workflowId: `wf-sizes-${d}`,
            trigger: 'push',
            commitSha: 'a'.repeat(40),
            commitMessage: filler(200, 'message'),
            status: 'failed',
            statusReason: reason.slice(0, 30_000),
            buildLogTail: log(500, 2000, 'build'),
            runtimeLogTail: log(500, 2000, 'runtime'),
            createdAt: new Date(Date.UTC(2026, 0, 1, 0, d)),
            finishedAt: new Date(Date.UTC(2026, 0, 1, 0, d, 30)),
          },
        });
      }
    }
    for (let i = 0; i < 100; i++)
      await prisma.resource.create({
        data: {
          userId,
          projectId,
          name: `${'r'.repeat(59)}-${String(i).padStart(3, '0')}`,
          liveKey: `${projectId}/r${i}`,
          type: 'postgres',
          size: 'small',
          region: 'local',
          status: 'ready',
        },
      });
  }, 300_000);
  afterAll(async () => {
    await client?.close();
    await srv?.close();
  });

  const first = `${'s'.repeat(58)}-000`;

  async function answer(tool: string, args: Record<string, unknown> = {}) {
    const res = await call(client, tool, args);
    if (res.isError) throw new Error(text(res));
    const out = res.structuredContent as Record<string, unknown>;
    return { chars: text(res).length, out };
  }

  it('get_service: logs clipped and the oldest lines dropped, env summarised, the note says how to get the rest', async () => {
    for (const args of [
      { name: first },
      { name: first, include_env: true, deploy_log_lines: 500, runtime_log_lines: 500 },
    ]) {
      const { chars, out } = await answer('get_service', args);
      expect(chars, JSON.stringify(args)).toBeLessThanOrEqual(MAX_ANSWER_CHARS);
      const d = out.deployment as {
        reason: string;
        build_log: { lines: string[]; note: string };
        runtime_log: { lines: string[] };
      };
      // The newest lines stay; the reason keeps its first sentence, collapses repeats, and is bounded.
      expect(d.build_log.lines.at(-1)).toMatch(/^build line 500 /);
      expect(d.reason.split('\n')[0]).toBe('the build failed at step "npm ci": its own error lines follow');
      expect(d.reason).toMatch(/the line above 199 more times/);
      expect(d.reason.split('\n').length).toBeLessThanOrEqual(22);
      expect(out.note).toMatch(/Shortened to fit 16000 characters: .*log line/);
      if (args.include_env) expect(out.note).toMatch(/env not shown: 100 variable\(s\): V000_X/);
    }
  });

  it('get_service with few log lines shows them whole; env too large for a quarter of the answer is summarised', async () => {
    const { chars, out } = await answer('get_service', {
      name: first,
      deploy_log_lines: 2,
      runtime_log_lines: 0,
    });
    expect(chars).toBeLessThanOrEqual(MAX_ANSWER_CHARS);
    const d = out.deployment as { build_log: { lines: string[] } };
    expect(d.build_log.lines.map((l) => l.length)).toEqual([2000, 2000]);
    expect(d.build_log.lines.at(-1)).toMatch(/^build line 500 /);
    expect(out.env).toEqual({});
    expect(out.note).toMatch(/env not shown: 100 variable\(s\): V000_X+, V001_X/);
  });

  it('list_deployments: first lines of reasons, a shortened page, and paging sees every deployment once', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 100; page++) {
      const { chars, out } = await answer('list_deployments', {
        name: first,
        limit: 100,
        ...(cursor ? { cursor } : {}),
      });
      expect(chars).toBeLessThanOrEqual(MAX_ANSWER_CHARS);
      const rows = out.deployments as { id: string; reason: string }[];
      if (page === 0) {
        expect(rows.length).toBeLessThan(100);
        expect(out.note).toMatch(
          /^Shortened to \d+ item\(s\) to fit 16000 characters\. More results: call list_deployments again with cursor=/,
        );
      }
      for (const r of rows)
        expect(r.reason).toMatch(
          /^the build failed at step "npm ci": its own error lines follow \(more in get_service/,
        );
      seen.push(...rows.map((r) => r.id));
      cursor = (out.next_cursor as string | null) ?? undefined;
      if (!cursor) break;
    }
    expect(seen).toHaveLength(100);
    expect(new Set(seen).size).toBe(100);
  });

  it('list_services and list_resources: shortened pages that continue right after the last item shown', async () => {
    for (const [tool, key] of [
      ['list_services', 'services'],
      ['list_resources', 'resources'],
    ] as const) {
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 200; page++) {
        const { chars, out } = await answer(tool, { limit: 100, ...(cursor ? { cursor } : {}) });
        expect(chars, tool).toBeLessThanOrEqual(MAX_ANSWER_CHARS);
        seen.push(...(out[key] as { name: string }[]).map((s) => s.name));
        cursor = (out.next_cursor as string | null) ?? undefined;
        if (!cursor) break;
      }
      expect(seen, tool).toHaveLength(100);
      expect(new Set(seen).size, tool).toBe(100);
    }
  });

  it('whoami and the default pages fit', async () => {
    for (const [tool, args] of [
      ['whoami', {}],
      ['list_services', {}],
      ['list_resources', {}],
      ['list_deployments', { name: first }],
    ] as const) {
      const { chars } = await answer(tool, args);
      expect(chars, tool).toBeLessThanOrEqual(MAX_ANSWER_CHARS);
    }
  });
});
