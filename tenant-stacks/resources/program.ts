import { createRequire } from 'node:module';
import * as pulumi from '@pulumi/pulumi';
import {
  type PostgresAdmin,
  type PostgresDatabaseInputs,
  postgresDatabaseProvider,
} from './postgres-provider.ts';

import { type SqliteVolumeInputs, sqliteVolumeProvider } from './sqlite-provider.ts';
import { type TursoApi, type TursoDatabaseInputs, tursoDatabaseProvider } from './turso-provider.ts';

/** The `pg` driver the provider loads (resolved here: the launcher runs elsewhere). */
const PG_MODULE = createRequire(import.meta.url).resolve('pg');

/** A `postgres` resource: a database and a role of its own on a server the platform runs. */
export type PostgresResourceSpec = {
  admin: PostgresAdmin;
  database: string;
  role: string;
  password: string;
  connectionLimit: number;
};

class PostgresDatabase extends pulumi.dynamic.Resource {
  constructor(
    name: string,
    args: { [K in keyof PostgresDatabaseInputs]: pulumi.Input<PostgresDatabaseInputs[K]> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    // Outputs echo the inputs: the password and the admin settings stay encrypted there too.
    super(postgresDatabaseProvider, name, args, { ...opts, additionalSecretOutputs: ['password', 'admin'] });
  }
}

/**
 * A resource's stack program (a pure factory): one database and its role. Secrets (the password,
 * the admin URL) are Pulumi secrets, encrypted in the stack's state.
 */
export function postgresResourceProgram(spec: PostgresResourceSpec): pulumi.automation.PulumiFn {
  return async () => {
    const db = new PostgresDatabase('database', {
      admin: pulumi.secret(spec.admin),
      pgModule: PG_MODULE,
      database: spec.database,
      role: spec.role,
      password: pulumi.secret(spec.password),
      connectionLimit: spec.connectionLimit,
    });
    return { database: db.id, role: spec.role, connectionLimit: spec.connectionLimit };
  };
}

class SqliteVolume extends pulumi.dynamic.Resource {
  constructor(name: string, args: { [K in keyof SqliteVolumeInputs]: pulumi.Input<SqliteVolumeInputs[K]> }) {
    super(sqliteVolumeProvider, name, args, {});
  }
}

/** An embedded `sqlite` resource's stack program: the directory attached containers mount. */
export function sqliteResourceProgram(spec: SqliteVolumeInputs): pulumi.automation.PulumiFn {
  return async () => {
    const volume = new SqliteVolume('volume', { dir: spec.dir });
    return { dir: volume.id };
  };
}

/** The Turso client the provider loads (resolved here: the launcher runs elsewhere). */
const TURSO_API_MODULE = createRequire(import.meta.url).resolve('@tursodatabase/api');

/** A Turso `sqlite` resource: its database, the group of its region and a database token. */
export type TursoResourceSpec = Omit<TursoDatabaseInputs, 'api'> & {
  api: Omit<TursoApi, 'module' | 'timeoutMs'> & { timeoutMs?: number };
};

class TursoDatabase extends pulumi.dynamic.Resource {
  declare readonly hostname: pulumi.Output<string>;
  declare readonly token: pulumi.Output<string>;
  constructor(
    name: string,
    args: { [K in keyof TursoDatabaseInputs]: pulumi.Input<TursoDatabaseInputs[K]> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    // The platform API token (in `api`) and the database token stay encrypted in the state.
    super(
      tursoDatabaseProvider,
      name,
      { ...args, hostname: undefined, token: undefined },
      { ...opts, additionalSecretOutputs: ['api', 'token'] },
    );
  }
}

/**
 * A Turso `sqlite` resource's stack program. Outputs: the hostname and the database token (a
 * secret), which the activity seals into the resource's row.
 */
export function tursoResourceProgram(spec: TursoResourceSpec): pulumi.automation.PulumiFn {
  return async () => {
    const db = new TursoDatabase('database', {
      ...spec,
      api: pulumi.secret({ ...spec.api, module: TURSO_API_MODULE, timeoutMs: spec.api.timeoutMs ?? 15_000 }),
    });
    return { database: db.id, hostname: db.hostname, token: pulumi.secret(db.token) };
  };
}
