import type * as pulumi from '@pulumi/pulumi';

// Pulumi serializes this provider's methods into the provider launcher, so each is
// self-contained: Node built-ins come from process.getBuiltinModule, the `pg` driver from the
// absolute path in `pgModule`, and helpers are nested (see ../local/providers.ts).

/** How the provider reaches the server as an administrator (a Pulumi secret in state). */
export type PostgresAdmin =
  /** The embedded server: the superuser over the unix socket (peer authentication, no password). */
  | { socketDir: string; port: number; user: string }
  /** A server the operator runs: an admin URL (CREATEROLE, CREATEDB). */
  | { url: string };

export type PostgresDatabaseInputs = {
  admin: PostgresAdmin;
  /** Absolute path of the `pg` module the provider loads. */
  pgModule: string;
  database: string;
  role: string;
  /** The role's password (a Pulumi secret); the server keeps only its SCRAM verifier. */
  password: string;
  connectionLimit: number;
};

/** A database and a login role of its own: nobody else may connect to it. */
export const postgresDatabaseProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: PostgresDatabaseInputs) {
    await (
      postgresDatabaseProvider as unknown as { apply: (i: PostgresDatabaseInputs) => Promise<void> }
    ).apply(inputs);
    return { id: `${inputs.database}`, outs: inputs };
  },

  async update(id: string, _olds: PostgresDatabaseInputs, news: PostgresDatabaseInputs) {
    await (
      postgresDatabaseProvider as unknown as { apply: (i: PostgresDatabaseInputs) => Promise<void> }
    ).apply(news);
    return { outs: news, id };
  },

  async diff(_id: string, olds: PostgresDatabaseInputs, news: PostgresDatabaseInputs) {
    const replaces = (['database', 'role'] as const).filter((k) => olds[k] !== news[k]);
    const changed = (['password', 'connectionLimit'] as const).filter((k) => olds[k] !== news[k]);
    const adminChanged = JSON.stringify(olds.admin) !== JSON.stringify(news.admin);
    return {
      changes: replaces.length + changed.length > 0 || adminChanged,
      replaces,
      deleteBeforeReplace: true,
    };
  },

  async delete(_id: string, olds: PostgresDatabaseInputs) {
    const { createRequire } = process.getBuiltinModule('node:module');
    const pg = createRequire(olds.pgModule)(olds.pgModule) as typeof import('pg');
    const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
    const admin = olds.admin;
    const client = new pg.Client(
      'url' in admin
        ? { connectionString: admin.url }
        : { host: admin.socketDir, port: admin.port, user: admin.user, database: 'postgres' },
    );
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS ${ident(olds.database)} WITH (FORCE)`);
      await client.query(`DROP ROLE IF EXISTS ${ident(olds.role)}`);
    } finally {
      await client.end().catch(() => undefined);
    }
  },

  /**
   * Makes the role and database match `inputs` (idempotent: a retry after a partial run finishes
   * it). The password travels as a SCRAM verifier computed here: the server never sees it.
   */
  async apply(inputs: PostgresDatabaseInputs) {
    const crypto = process.getBuiltinModule('node:crypto');
    const { createRequire } = process.getBuiltinModule('node:module');
    const pg = createRequire(inputs.pgModule)(inputs.pgModule) as typeof import('pg');
    const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
    const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;
    const verifier = (password: string) => {
      const salt = crypto.randomBytes(16);
      const iterations = 4096;
      const salted = crypto.pbkdf2Sync(password, salt, iterations, 32, 'sha256');
      const clientKey = crypto.createHmac('sha256', salted).update('Client Key').digest();
      const storedKey = crypto.createHash('sha256').update(clientKey).digest();
      const serverKey = crypto.createHmac('sha256', salted).update('Server Key').digest();
      return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
    };
    const admin = inputs.admin;
    const connect = async (database: string) => {
      const c = new pg.Client(
        'url' in admin
          ? { connectionString: admin.url.replace(/\/[^/?]*(\?|$)/, `/${encodeURIComponent(database)}$1`) }
          : { host: admin.socketDir, port: admin.port, user: admin.user, database },
      );
      await c.connect();
      return c;
    };
    const limit = Math.max(1, Math.floor(inputs.connectionLimit));
    const role = ident(inputs.role);
    const db = ident(inputs.database);
    const client = await connect('postgres');
    try {
      const roleAttrs = `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT ${limit} PASSWORD ${literal(verifier(inputs.password))}`;
      const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [inputs.role]);
      await client.query(
        exists.rowCount ? `ALTER ROLE ${role} ${roleAttrs}` : `CREATE ROLE ${role} ${roleAttrs}`,
      );
      // An administrator that is no superuser must be a member of the role to make it an owner.
      const su = await client.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
      if (!su.rows[0]?.rolsuper) await client.query(`GRANT ${role} TO current_user`);
      const dbExists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [inputs.database]);
      if (!dbExists.rowCount)
        await client.query(
          `CREATE DATABASE ${db} OWNER ${role} CONNECTION LIMIT ${limit} TEMPLATE template0 ENCODING 'UTF8'`,
        );
      else await client.query(`ALTER DATABASE ${db} CONNECTION LIMIT ${limit}`);
      await client.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
      await client.query(`GRANT ALL ON DATABASE ${db} TO ${role}`);
    } finally {
      await client.end().catch(() => undefined);
    }
    const inside = await connect(inputs.database);
    try {
      await inside.query(`ALTER SCHEMA public OWNER TO ${role}`);
      await inside.query('REVOKE ALL ON SCHEMA public FROM PUBLIC');
    } finally {
      await inside.end().catch(() => undefined);
    }
  },
} as pulumi.dynamic.ResourceProvider;
