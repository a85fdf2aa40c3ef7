// Control-plane memory (printed by `npm run bench -- memory`, never asserted), on `serve --role
// all` (what npm start runs) with a fresh data dir:
//   1. idle, 20 s after ready: RSS of every process it started (the server, Temporal, Traefik,
//      and buildkitd, podman, the registry, PostgreSQL when they run: the first three start on
//      the first deploy and stop when idle, DEPLOY_MCP_DAEMONS_IDLE_SECONDS), summed, against
//      500 MiB;
//   2. the server process under 60 s of 50 MCP clients (each its own user and API key, calling
//      whoami and list_services in turn): its RSS idle before the load, the peak during it, and
//      how far it comes back down after (target: within 10% of idle).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { createApiKey } from '../core/api-keys.ts';
import { openDatabase } from '../core/db/client.ts';
import { createUser } from '../core/users.ts';
import { call, connectClient } from '../test/support/mcp.ts';
import { repoRoot, scratchDir } from '../test/support/scratch.ts';
import { startServe } from '../test/support/serve.ts';

const SETTLE_SECONDS = 20;
const TARGET_MIB = 500;
const CLIENTS = 50;
const SERVICES_PER_USER = 10;
const LOAD_SECONDS = 60;
const AFTER_SECONDS = 120;

type Proc = { pid: number; ppid: number; name: string; rssMiB: number; anonMiB: number };

const MiB = (kB: string | undefined) => Number(kB ?? 0) / 1024;

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      out.push({
        pid: Number(entry),
        ppid: Number(fields[1]),
        name,
        rssMiB: MiB(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]),
        anonMiB: MiB(/RssAnon:\s+(\d+) kB/.exec(status)?.[1]),
      });
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** `root` and every process descended from it (daemons may start their own process groups). */
function tree(root: number): Proc[] {
  const all = processes();
  const ids = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all)
      if (!ids.has(p.pid) && ids.has(p.ppid)) {
        ids.add(p.pid);
        grew = true;
      }
  }
  return all.filter((p) => ids.has(p.pid));
}

function rssMiB(pid: number): number {
  return MiB(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

/** Users with an API key and `SERVICES_PER_USER` services each, written to serve's database. */
async function seedUsers(databaseUrl: string): Promise<string[]> {
  const db = await openDatabase(databaseUrl);
  try {
    const keys: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const user = await createUser(db.prisma, `memory${i}@example.com`);
      keys.push((await createApiKey(db.prisma, user.id, 'bench')).key);
      const project = await db.prisma.project.findFirstOrThrow({ where: { userId: user.id } });
      for (let j = 0; j < SERVICES_PER_USER; j++)
        await db.prisma.service.create({
          data: {
            userId: user.id,
            projectId: project.id,
            name: `svc-${j}`,
            liveKey: `${project.id}/svc-${j}`,
            stackName: `memory-${i}-${j}`,
            repoUrl: 'app',
          },
        });
    }
    return keys;
  } finally {
    await db.close();
  }
}

export async function benchMemory() {
  const work = scratchDir('bench-memory', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  const serve = await startServe(dataDir);
  const server = serve.child.pid as number;
  let clients: Client[] = [];
  try {
    await sleep(SETTLE_SECONDS * 1000);
    const procs = tree(server);
    const byName = new Map<string, { rss: number; anon: number }>();
    for (const p of procs) {
      const sum = byName.get(p.name) ?? { rss: 0, anon: 0 };
      byName.set(p.name, { rss: sum.rss + p.rssMiB, anon: sum.anon + p.anonMiB });
    }
    const total = procs.reduce((sum, p) => sum + p.rssMiB, 0);
    console.log(
      `\nControl plane memory, serve --role all idle ${SETTLE_SECONDS} s after ready (RSS in MiB, of which ` +
        `anonymous; the rest is mapped files, mostly the binaries' code); load average ${load()}`,
    );
    for (const [name, m] of [...byName].sort((a, b) => b[1].rss - a[1].rss))
      console.log(`  ${name.padEnd(20)} ${m.rss.toFixed(0).padStart(6)}   (${m.anon.toFixed(0)} anonymous)`);
    console.log(
      `  ${'total'.padEnd(20)} ${total.toFixed(0).padStart(6)}   (target ≤ ${TARGET_MIB} MiB, issue 15)`,
    );
    if (!byName.has('buildkitd'))
      console.log(
        '  (the registry, buildkitd and podman start on the first deploy and stop after ' +
          'DEPLOY_MCP_DAEMONS_IDLE_SECONDS idle: about 100 MiB more while they run)',
      );

    // The server under load: every client its own user, connected and warmed up before "idle".
    const keys = await seedUsers(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    const url = `${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`;
    clients = await Promise.all(keys.map((key) => connectClient(url, key)));
    for (const c of clients) {
      await call(c, 'whoami');
      await call(c, 'list_services');
    }
    await sleep(10_000);
    const idle = rssMiB(server);
    let peak = idle;
    let calls = 0;
    let failed = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMiB(server));
    }, 500);
    const until = Date.now() + LOAD_SECONDS * 1000;
    await Promise.all(
      clients.map(async (c, i) => {
        for (let n = 0; n < 100_000 && Date.now() < until; n++) {
          const res = await call(c, (i + n) % 2 ? 'whoami' : 'list_services');
          if (res.isError) failed++;
          calls++;
        }
      }),
    );
    clearInterval(sampler);
    const loadAfter = load();
    await Promise.all(clients.map((c) => c.close()));
    clients = [];
    const after: string[] = [];
    let settled = rssMiB(server);
    for (let waited = 10; waited <= AFTER_SECONDS; waited += 10) {
      await sleep(10_000);
      settled = rssMiB(server);
      after.push(`${waited} s: ${settled.toFixed(0)}`);
      if (settled <= idle * 1.1) break;
    }
    console.log(
      `\nServer process (RSS, MiB) under ${LOAD_SECONDS} s of ${CLIENTS} MCP clients (whoami and list_services, ` +
        `${SERVICES_PER_USER} services per user): ${calls} calls, ${failed} failed; load average ${loadAfter}`,
    );
    console.log(`  idle, clients connected   ${idle.toFixed(0).padStart(6)}`);
    console.log(`  peak during the load      ${peak.toFixed(0).padStart(6)}`);
    console.log(`  after the load            ${settled.toFixed(0).padStart(6)}   (${after.join(', ')})`);
    console.log(
      `  after / idle              ${((100 * settled) / idle).toFixed(0).padStart(5)}%   (target ≤ 110%, issue 15)`,
    );
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await serve.stop();
    work.cleanup();
  }
}
