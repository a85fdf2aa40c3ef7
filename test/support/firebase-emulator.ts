import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../../core/daemons/probes.ts';
import { repoRoot, scratchDir } from './scratch.ts';

export type FirebaseAuthEmulator = {
  /** host:port of the Auth emulator. */
  host: string;
  projectId: string;
  /** Creates a user (email + password) through the emulator's REST API; returns its uid. */
  createUser: (email: string, password: string, emailVerified?: boolean) => Promise<string>;
  /** Signs in through the emulator (as the page does): an ID token. */
  signIn: (email: string, password: string) => Promise<string>;
  stop: () => Promise<void>;
};

/**
 * The official Firebase Auth emulator (firebase-tools, installed by scripts/setup-test-tools.sh)
 * for a demo- project, on loopback. Readiness took 4-100 s under load on these machines: the
 * wait is bounded at 180 s.
 */
export async function startFirebaseAuthEmulator(): Promise<FirebaseAuthEmulator> {
  const firebase = path.join(repoRoot, '.tools/bin/firebase');
  if (!fs.existsSync(firebase))
    throw new Error('firebase-tools is missing: run bash scripts/setup-test-tools.sh');
  const scratch = scratchDir('firebase-emulator');
  const projectId = `demo-deploy-mcp-${Date.now().toString(36)}`;
  const [port, hub, logging] = [await freePort(), await freePort(), await freePort()];
  fs.writeFileSync(
    path.join(scratch.dir, 'firebase.json'),
    JSON.stringify({
      emulators: {
        auth: { host: '127.0.0.1', port },
        hub: { host: '127.0.0.1', port: hub },
        logging: { host: '127.0.0.1', port: logging },
        ui: { enabled: false },
      },
    }),
  );
  fs.mkdirSync(path.join(scratch.dir, 'home'));
  const log: string[] = [];
  const child: ChildProcess = spawn(firebase, ['emulators:start', '--only', 'auth', '--project', projectId], {
    cwd: scratch.dir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own home (fresh config store: no usage reporting) and no update check.
    env: {
      PATH: `${path.join(repoRoot, '.tools/node/bin')}:${path.dirname(process.execPath)}:/usr/bin:/bin`,
      HOME: path.join(scratch.dir, 'home'),
      NO_UPDATE_NOTIFIER: '1',
      CI: 'true',
    },
  });
  const keep = (b: Buffer) => {
    log.push(b.toString());
    if (log.length > 200) log.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const host = `127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.pid) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {}
      const timer = setTimeout(() => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {}
      }, 10_000);
      await exited;
      clearTimeout(timer);
    }
    scratch.cleanup();
  };
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`the Auth emulator exited (${child.exitCode}):\n${log.join('')}`);
    }
    const ready = await fetch(`http://${host}/`, { signal: AbortSignal.timeout(2000) })
      .then(
        async (r) =>
          ((await r.json()) as { authEmulator?: { ready?: boolean } }).authEmulator?.ready === true,
      )
      .catch(() => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the Auth emulator was not ready within 180 s:\n${log.join('')}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  const api = `http://${host}/identitytoolkit.googleapis.com/v1`;
  const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`emulator ${url}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  return {
    host,
    projectId,
    createUser: async (email, password, emailVerified = true) => {
      // "Bearer owner" is the emulator's admin credential.
      const made = await post(
        `${api}/projects/${projectId}/accounts`,
        { email, password, emailVerified },
        { authorization: 'Bearer owner' },
      );
      return String(made.localId);
    },
    signIn: async (email, password) =>
      String(
        (
          await post(`${api}/accounts:signInWithPassword?key=fake-api-key`, {
            email,
            password,
            returnSecureToken: true,
          })
        ).idToken,
      ),
    stop,
  };
}
