import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createClient } from '@libsql/client';
import { ApplicationFailure } from '@temporalio/activity';
import { childEnv } from '../../core/child-env.ts';
import type { TursoSettings } from '../../core/config.ts';
import type { Db, Resource } from '../../core/db/client.ts';
import {
  connectionAad,
  isTurso,
  postgresNames,
  RESOURCE_SIZE_CONNECTIONS,
  type ResourceSize,
  tursoNames,
} from '../../core/resources/catalog.ts';
import type { SecretBox } from '../../core/secrets.ts';
import { lazyProgram } from '../../tenant-stacks/lazy-program.ts';
import type { PostgresAdmin } from '../../tenant-stacks/resources/postgres-provider.ts';
import type { TenantStackRunner } from '../../tenant-stacks/runner.ts';

// Loaded with the first stack update (tenant-stacks/lazy-program.ts).
const programs = () => import('../../tenant-stacks/resources/program.ts');
const postgresResourceProgram = lazyProgram(async () => (await programs()).postgresResourceProgram);
const sqliteResourceProgram = lazyProgram(async () => (await programs()).sqliteResourceProgram);
const tursoResourceProgram = lazyProgram(async () => (await programs()).tursoResourceProgram);

/** The PostgreSQL server `postgres` resources live on, as the resource activities reach it. */
export type PostgresServer = {
  /** How the provider connects as an administrator. */
  admin: PostgresAdmin;
  /** host and port apps connect to (inside their containers). */
  appHost: string;
  appPort: number;
  /** Directory of pg_dump (the embedded server's binaries). */
  binDir: string;
  /** Starts the server when it runs on demand (the embedded one); before every use. */
  ensureStarted?: () => Promise<void>;
};

export type ResourceDeps = {
  db: Db;
  secrets: SecretBox;
  runner: TenantStackRunner;
  /** Absent when this deployer offers no PostgreSQL. */
  postgres: PostgresServer | undefined;
  /** Final backups of deleted resources: `<dataDir>/backups`. */
  backupsDir: string;
  /** Directories of embedded `sqlite` resources (`<dataDir>/volumes`); absent: sqlite is not offered. */
  volumesDir?: string | undefined;
  backupRetentionDays: number;
  /** Turso's Platform API for `sqlite` resources outside the `local` region; absent: not offered. */
  turso?: (TursoSettings & { timeoutMs?: number }) | undefined;
};

/** Failure types the resource workflows do not retry. */
export const RESOURCE_FAILED = 'ResourceFailed';

/** A `postgres` resource's connection variables (what attached services get). */
export type PostgresConnection = {
  DATABASE_URL: string;
  PGHOST: string;
  PGPORT: string;
  PGUSER: string;
  PGPASSWORD: string;
  PGDATABASE: string;
};

/** Where an embedded `sqlite` resource's directory is mounted in attached containers. */
export const sqliteMountPath = (name: string) => `/data/${name}`;

/** The host directory of an embedded `sqlite` resource. */
export const sqliteVolume = (volumesDir: string, resourceId: string) => path.join(volumesDir, resourceId);

/** An embedded `sqlite` resource's variables: the same `@libsql/client` code works with a `file:` URL. */
export function sqliteConnection(name: string): Record<string, string> {
  const file = `${sqliteMountPath(name)}/db.sqlite`;
  return {
    DATABASE_URL: `file:${file}`,
    LIBSQL_URL: `file:${file}`,
    LIBSQL_AUTH_TOKEN: '',
    SQLITE_PATH: file,
  };
}

/**
 * The resource activities (deployer workers). They receive ids only: credentials are made here,
 * sealed into the resource's row before the stack runs (a retry reuses them), and reach Pulumi
 * as secrets.
 */
export function resourceActivities(deps: ResourceDeps) {
  const { db, secrets } = deps;

  function postgresServer(): PostgresServer {
    if (!deps.postgres)
      throw ApplicationFailure.nonRetryable('PostgreSQL is not offered by this server', RESOURCE_FAILED);
    return deps.postgres;
  }

  async function connectionOf(resource: Resource): Promise<PostgresConnection> {
    if (resource.connectionEncrypted)
      return secrets.openJson<PostgresConnection>(resource.connectionEncrypted, connectionAad(resource.id));
    const server = postgresServer();
    const { database, role } = postgresNames(resource);
    const password = randomBytes(24).toString('base64url');
    const connection: PostgresConnection = {
      DATABASE_URL: `postgresql://${role}:${password}@${server.appHost}:${server.appPort}/${database}`,
      PGHOST: server.appHost,
      PGPORT: String(server.appPort),
      PGUSER: role,
      PGPASSWORD: password,
      PGDATABASE: database,
    };
    // Only when none was kept meanwhile (a concurrent attempt): the first one's stands.
    await db.resource.updateMany({
      where: { id: resource.id, connectionEncrypted: null },
      data: { connectionEncrypted: secrets.sealJson(connection, connectionAad(resource.id)) },
    });
    const kept = await db.resource.findUniqueOrThrow({ where: { id: resource.id } });
    return secrets.openJson<PostgresConnection>(kept.connectionEncrypted ?? '', connectionAad(resource.id));
  }

  function program(resource: Resource, connection: PostgresConnection) {
    const server = postgresServer();
    return postgresResourceProgram({
      admin: server.admin,
      database: connection.PGDATABASE,
      role: connection.PGUSER,
      password: connection.PGPASSWORD,
      connectionLimit: RESOURCE_SIZE_CONNECTIONS[resource.size as ResourceSize] ?? 5,
    });
  }

  return {
    /** Creates (or brings up to date) the resource's stack, then marks it ready. */
    async provisionResourceStack(resourceId: string): Promise<void> {
      const resource = await db.resource.findUniqueOrThrow({ where: { id: resourceId } });
      if (resource.deletedAt || !resource.stackName) return;
      if (isTurso(resource)) {
        const connection = await tursoUp(resource, resource.stackName, resource.credentialVersion);
        await db.resource.updateMany({
          where: { id: resourceId, status: 'provisioning' },
          data: {
            status: 'ready',
            statusReason: null,
            connectionEncrypted: secrets.sealJson(connection, connectionAad(resource.id)),
          },
        });
        return;
      }
      if (resource.type === 'sqlite') {
        const dir = sqliteDir(resource);
        await deps.runner.up(resource.stackName, sqliteResourceProgram({ dir }));
        await db.resource.updateMany({
          where: { id: resourceId, status: 'provisioning' },
          data: {
            status: 'ready',
            statusReason: null,
            connectionEncrypted: secrets.sealJson(
              sqliteConnection(resource.name),
              connectionAad(resource.id),
            ),
          },
        });
        return;
      }
      if (resource.type !== 'postgres')
        throw ApplicationFailure.nonRetryable(`${resource.type} is not available yet`, RESOURCE_FAILED);
      const connection = await connectionOf(resource);
      await deps.postgres?.ensureStarted?.();
      await deps.runner.up(resource.stackName, program(resource, connection));
      await db.resource.updateMany({
        where: { id: resourceId, status: 'provisioning' },
        data: { status: 'ready', statusReason: null },
      });
    },

    /**
     * New credentials: a new password is sealed into the row (credential version + 1) before the
     * stack applies it, so any retry converges on what the row holds. The old password stops
     * working for new connections at once.
     */
    async rotateResourceCredentials(resourceId: string): Promise<void> {
      const resource = await db.resource.findUniqueOrThrow({ where: { id: resourceId } });
      if (resource.deletedAt || !resource.stackName || resource.status !== 'ready') return;
      if (isTurso(resource)) {
        // Turso mints the token: the version goes up first, and the stack invalidates every
        // older token before minting the new one, which is sealed into the row.
        const next = await db.resource.update({
          where: { id: resourceId },
          data: { credentialVersion: { increment: 1 } },
        });
        const connection = await tursoUp(next, resource.stackName, next.credentialVersion);
        await db.resource.update({
          where: { id: resourceId },
          data: { connectionEncrypted: secrets.sealJson(connection, connectionAad(resource.id)) },
        });
        return;
      }
      if (resource.type !== 'postgres' || !resource.connectionEncrypted)
        throw ApplicationFailure.nonRetryable(
          `${resource.type} resources have no credentials here`,
          RESOURCE_FAILED,
        );
      const old = await connectionOf(resource);
      const password = randomBytes(24).toString('base64url');
      const url = new URL(old.DATABASE_URL);
      url.password = password;
      const connection: PostgresConnection = { ...old, DATABASE_URL: url.toString(), PGPASSWORD: password };
      await db.resource.update({
        where: { id: resourceId },
        data: {
          connectionEncrypted: secrets.sealJson(connection, connectionAad(resource.id)),
          credentialVersion: { increment: 1 },
        },
      });
      await deps.postgres?.ensureStarted?.();
      await deps.runner.up(resource.stackName, program(resource, connection));
    },

    /** Records why provisioning failed. */
    async markResourceFailed(resourceId: string, reason: string): Promise<void> {
      await db.resource.updateMany({
        where: { id: resourceId, status: 'provisioning' },
        data: { status: 'failed', statusReason: reason.slice(0, 1000) },
      });
    },

    /**
     * Keeps a final backup (kept `backupRetentionDays`), destroys the stack (the database and its
     * role), and marks the resource deleted. Returns the backup's file name, if one was kept.
     */
    async destroyResourceStack(resourceId: string): Promise<{ backup: string | null }> {
      const resource = await db.resource.findUniqueOrThrow({ where: { id: resourceId } });
      let backup: string | null = null;
      if (resource.stackName && isTurso(resource)) {
        // The Platform API has no export: no final backup (workers/resources/README.md).
        await deps.runner.destroy(resource.stackName).catch((err: unknown) => {
          throw tursoFailure(err);
        });
      } else if (resource.stackName && resource.type === 'sqlite') {
        if (deps.backupRetentionDays > 0 && resource.status === 'deleting')
          backup = await copySqlite(resource);
        await deps.runner.destroy(resource.stackName);
      }
      if (resource.stackName && resource.type === 'postgres' && resource.connectionEncrypted) {
        const connection = await connectionOf(resource);
        await deps.postgres?.ensureStarted?.();
        if (deps.backupRetentionDays > 0 && resource.status === 'deleting')
          backup = await dumpPostgres(resource, connection.PGDATABASE).catch((err: unknown) => {
            // A database that was never made has nothing to keep.
            if (/does not exist/.test(String((err as Error).message))) return null;
            throw err;
          });
        await deps.runner.destroy(resource.stackName);
      }
      await db.resource.update({
        where: { id: resourceId },
        data: {
          status: 'deleted',
          deletedAt: resource.deletedAt ?? new Date(),
          liveKey: null,
          connectionEncrypted: null,
        },
      });
      pruneBackups(deps.backupsDir, deps.backupRetentionDays);
      return { backup: backup && path.basename(backup) };
    },
  };

  /**
   * Brings a Turso resource's stack up (its group, database and a token of `version`) and returns
   * its connection variables. Turso's answers end the attempt for good: the provider has retried
   * what could be retried.
   */
  async function tursoUp(
    resource: Resource,
    stackName: string,
    version: number,
  ): Promise<Record<string, string>> {
    const turso = deps.turso;
    if (!turso)
      throw ApplicationFailure.nonRetryable('Turso is not configured on this server', RESOURCE_FAILED);
    const { database, group } = tursoNames(resource, turso.groupPrefix);
    const program = tursoResourceProgram({
      api: {
        url: turso.apiUrl,
        org: turso.org,
        token: turso.apiToken,
        ...(turso.timeoutMs ? { timeoutMs: turso.timeoutMs } : {}),
      },
      group,
      location: resource.region,
      database,
      tokenExpiration: turso.tokenExpiration,
      tokenVersion: version,
    });
    const { outputs } = await deps.runner.up(stackName, program).catch((err: unknown) => {
      throw tursoFailure(err);
    });
    return tursoConnection(String(outputs.hostname?.value ?? ''), String(outputs.token?.value ?? ''));
  }

  function sqliteDir(resource: Resource): string {
    if (!deps.volumesDir)
      throw ApplicationFailure.nonRetryable('SQLite is not offered by this server', RESOURCE_FAILED);
    return sqliteVolume(deps.volumesDir, resource.id);
  }

  /** A consistent copy of the SQLite file (VACUUM INTO), 0600; null when the app never made one. */
  async function copySqlite(resource: Resource): Promise<string | null> {
    const source = path.join(sqliteDir(resource), 'db.sqlite');
    if (!fs.existsSync(source)) return null;
    fs.mkdirSync(deps.backupsDir, { recursive: true, mode: 0o700 });
    const file = path.join(
      deps.backupsDir,
      `${resource.name}-${resource.id}-${new Date().toISOString().replace(/[:.]/g, '')}.sqlite`,
    );
    const client = createClient({ url: `file:${source}` });
    try {
      await client.execute({ sql: 'VACUUM INTO ?', args: [file] });
    } finally {
      client.close();
    }
    fs.chmodSync(file, 0o600);
    return file;
  }

  /** `pg_dump --format=custom` of the resource's database, into a 0600 file under the backups dir. */
  async function dumpPostgres(resource: Resource, database: string): Promise<string> {
    const server = postgresServer();
    fs.mkdirSync(deps.backupsDir, { recursive: true, mode: 0o700 });
    const file = path.join(
      deps.backupsDir,
      `${resource.name}-${resource.id}-${new Date().toISOString().replace(/[:.]/g, '')}.dump`,
    );
    const admin = server.admin;
    const args =
      'url' in admin
        ? ['--format=custom', '--no-password', `--dbname=${database}`]
        : [
            '--format=custom',
            '--no-password',
            `--host=${admin.socketDir}`,
            `--port=${admin.port}`,
            `--username=${admin.user}`,
            `--dbname=${database}`,
          ];
    // An admin URL's password goes through a 0600 passfile, never the command line or the environment.
    let passfile: string | undefined;
    const env: Record<string, string> = {};
    if ('url' in admin) {
      const url = new URL(admin.url);
      passfile = path.join(deps.backupsDir, `.pgpass-${resource.id}`);
      const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
      fs.writeFileSync(
        passfile,
        `${esc(url.hostname)}:${url.port || '5432'}:*:${esc(decodeURIComponent(url.username))}:${esc(decodeURIComponent(url.password))}\n`,
        { mode: 0o600 },
      );
      Object.assign(env, {
        PGPASSFILE: passfile,
        PGHOST: url.hostname,
        PGPORT: url.port || '5432',
        PGUSER: decodeURIComponent(url.username),
      });
    }
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      await new Promise<void>((resolve, reject) => {
        const child = spawn(path.join(server.binDir, 'pg_dump'), args, {
          env: childEnv(env),
          stdio: ['ignore', fd, 'pipe'],
        });
        let stderr = '';
        child.stderr?.on('data', (c) => {
          stderr += c;
        });
        child.once('error', reject);
        child.once('close', (code) =>
          code === 0
            ? resolve()
            : reject(new Error(`pg_dump failed (${code}): ${stderr.trim().slice(0, 500)}`)),
        );
      });
    } catch (err) {
      fs.rmSync(file, { force: true });
      throw err;
    } finally {
      fs.closeSync(fd);
      if (passfile) fs.rmSync(passfile, { force: true });
    }
    return file;
  }
}

/** Removes final backups older than `days` days. */
export function pruneBackups(dir: string, days: number, now = Date.now()): string[] {
  if (!fs.existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const file = path.join(dir, name);
    const st = fs.statSync(file);
    if (st.isFile() && now - st.mtimeMs > days * 86_400_000) {
      fs.rmSync(file, { force: true });
      removed.push(name);
    }
  }
  return removed;
}

/** A Turso `sqlite` resource's variables: the same `@libsql/client` code, over `libsql://`. */
export function tursoConnection(hostname: string, token: string): Record<string, string> {
  if (!hostname || !token) throw new Error('the Turso stack gave no hostname or token');
  return {
    DATABASE_URL: `libsql://${hostname}`,
    LIBSQL_URL: `libsql://${hostname}`,
    LIBSQL_AUTH_TOKEN: token,
  };
}

/** A failed Turso stack update: Turso's own message, final; anything else as it came (retried). */
export function tursoFailure(err: unknown): unknown {
  const message = String((err as Error)?.message ?? err);
  const at = message.indexOf('Turso ');
  if (at < 0) return err;
  const reason = message.slice(at).split(/;\s*(?=error:|\S+: )|\n/)[0] ?? message.slice(at);
  return ApplicationFailure.nonRetryable(reason.slice(0, 900), RESOURCE_FAILED);
}
