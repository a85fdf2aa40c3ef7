import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, scratchDir } from '../support/scratch.ts';

// scripts/lib.sh's parallel steps (start_job / wait_jobs), as scripts/setup.sh uses them: each
// job's output printed whole when it ends, a failing job fails the script and stops the others.
describe('setup: parallel jobs', () => {
  const work = scratchDir('setup-jobs');
  afterAll(() => work.cleanup());

  /** <body> after sourcing lib.sh, as setup.sh does (set -euo pipefail). */
  const scriptOf = (body: string) =>
    `set -euo pipefail\nROOT=${JSON.stringify(repoRoot)}\nsource "$ROOT/scripts/lib.sh"\n${body}\n`;

  function runJobs(body: string, env: Record<string, string> = {}) {
    const script = scriptOf(body);
    const result = spawnSync('bash', ['-c', script], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, DEPLOY_MCP_TOOLS_CACHE: path.join(work.dir, 'cache'), ...env },
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  async function gone(pid: number): Promise<boolean> {
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        return true;
      }
      await sleep(100);
    }
    return false;
  }

  it('prints each job whole, whatever the order its lines were written in', () => {
    const { status, stdout } = runJobs(`
a() { step "job a"; echo a1; sleep 0.4; echo a2; done_step "a done"; }
b() { step "job b"; echo b1; sleep 0.2; echo b2; done_step "b done"; }
start_job a a
start_job b b
wait_jobs
echo after`);
    expect(status).toBe(0);
    expect(stdout).toMatch(/==> job a\na1\na2\n {4}a done \(\d+s\)\n/);
    expect(stdout).toMatch(/==> job b\nb1\nb2\n {4}b done \(\d+s\)\n/);
    expect(stdout).toMatch(/after\n$/);
  });

  it('says which jobs are still running, and at which step, while they run', () => {
    const { status, stdout } = runJobs(
      `
slow() { step "first"; done_step ok; step "the slow step"; sleep 2.5; done_step "slow done"; }
quick() { step "quick step"; done_step "quick done"; }
start_job slow slow
start_job quick quick
wait_jobs
echo after`,
      { SETUP_PROGRESS_EVERY: '1' },
    );
    expect(status).toBe(0);
    // Only the job still running is named, with its current step; never inside a printed log.
    expect(stdout).toMatch(/^\.\.\. slow: the slow step \(\d+ s\)$/m);
    expect(stdout).not.toMatch(/^\.\.\. quick: (?!started$)/m);
    expect(stdout).toMatch(/==> first\n {4}ok \(\d+s\)\n==> the slow step\n {4}slow done \(\d+s\)\n/);
    // No progress line after the jobs ended.
    expect(stdout).toMatch(/slow done \(\d+s\)\n(?:.*\n)*after\n$/);
    expect(stdout.slice(stdout.indexOf('slow done'))).not.toMatch(/^\.\.\. /m);
  });

  it('fails on a failing job, with its log and step, and stops the others', async () => {
    const pidFile = path.join(work.dir, 'slow.pid');
    const { status, stdout, stderr } = runJobs(`
slow() { step "slow step"; sleep 120 & echo $! >${JSON.stringify(pidFile)}; wait; done_step never; }
bad() { step "first step"; done_step fine; step "bad step"; echo "the error output"; false; done_step never; }
start_job slow slow
for _ in {1..100}; do [[ -s ${JSON.stringify(pidFile)} ]] && break; sleep 0.1; done
start_job bad bad
wait_jobs
echo "not reached"`);
    expect(status).toBe(1);
    expect(stdout).toContain('==> first step\n    fine');
    expect(stdout).toContain('==> bad step\nthe error output\n');
    expect(stdout).not.toContain('not reached');
    expect(stdout).not.toContain('==> slow step');
    expect(stderr).toContain("setup: FAILED at step 'bad step' (exit 1)");
    expect(await gone(Number(fs.readFileSync(pidFile, 'utf8')))).toBe(true);
  });

  it('fails when the jobs outlast SETUP_JOBS_TIMEOUT, showing what they printed so far', async () => {
    const pidFile = path.join(work.dir, 'stuck.pid');
    const { status, stderr } = runJobs(
      `
stuck() { step "stuck step"; echo "still going"; sleep 120 & echo $! >${JSON.stringify(pidFile)}; wait; }
start_job stuck stuck
wait_jobs
echo "not reached"`,
      { SETUP_JOBS_TIMEOUT: '1' },
    );
    expect(status).toBe(1);
    expect(stderr).toContain('setup: FAILED: still running after 1s: stuck');
    expect(stderr).toContain('    | ==> stuck step\n    | still going');
    expect(await gone(Number(fs.readFileSync(pidFile, 'utf8')))).toBe(true);
  });
  it('stops its jobs when setup itself is stopped (SIGTERM)', async () => {
    const pidFile = path.join(work.dir, 'killed.pid');
    const setup = spawn(
      'bash',
      [
        '-c',
        scriptOf(`
slow() { step "slow step"; sleep 120 & echo $! >${JSON.stringify(pidFile)}; wait; }
start_job slow slow
wait_jobs`),
      ],
      {
        stdio: 'ignore',
        env: { ...process.env, DEPLOY_MCP_TOOLS_CACHE: path.join(work.dir, 'cache') },
      },
    );
    const exited = new Promise<number | null>((resolve) => setup.on('exit', (code) => resolve(code)));
    const written = () => fs.existsSync(pidFile) && /\d+\n/.test(fs.readFileSync(pidFile, 'utf8'));
    for (let i = 0; i < 100 && !written(); i++) await sleep(100);
    setup.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(await gone(Number(fs.readFileSync(pidFile, 'utf8')))).toBe(true);
  });
});
