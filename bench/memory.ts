// Control-plane memory (printed by `npm run bench -- memory`, never asserted): `serve --role all`
// (what npm start runs) on a fresh data dir, idle, summed over every process it started
// (the server, Temporal, Traefik, buildkitd, podman, the registry, PostgreSQL when it runs).
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot, scratchDir } from '../test/support/scratch.ts';
import { startServe } from '../test/support/serve.ts';

const SETTLE_SECONDS = 20;
const TARGET_MIB = 500;

type Proc = { pid: number; ppid: number; pgrp: number; name: string; rssMiB: number };

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const rss = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${entry}/status`, 'utf8'));
      out.push({
        pid: Number(entry),
        ppid: Number(fields[1]),
        pgrp: Number(fields[2]),
        name,
        rssMiB: Number(rss?.[1] ?? 0) / 1024,
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

export async function benchMemory() {
  const work = scratchDir('bench-memory', path.join(repoRoot, '.data', 'test'));
  const serve = await startServe(path.join(work.dir, 'data'));
  try {
    await sleep(SETTLE_SECONDS * 1000);
    const procs = tree(serve.child.pid as number);
    const byName = new Map<string, number>();
    for (const p of procs) byName.set(p.name, (byName.get(p.name) ?? 0) + p.rssMiB);
    const total = procs.reduce((sum, p) => sum + p.rssMiB, 0);
    console.log(`\nControl plane memory, serve --role all idle ${SETTLE_SECONDS} s after ready (RSS, MiB)`);
    for (const [name, mib] of [...byName].sort((a, b) => b[1] - a[1]))
      console.log(`  ${name.padEnd(20)} ${mib.toFixed(0).padStart(6)}`);
    console.log(
      `  ${'total'.padEnd(20)} ${total.toFixed(0).padStart(6)}   (target ≤ ${TARGET_MIB} MiB, issue 15)`,
    );
  } finally {
    await serve.stop();
    work.cleanup();
  }
}
