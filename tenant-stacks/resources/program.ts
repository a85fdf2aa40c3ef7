import { createRequire } from 'node:module';
import * as pulumi from '@pulumi/pulumi';
import {
  type PostgresAdmin,
  type PostgresDatabaseInputs,
  postgresDatabaseProvider,
} from './postgres-provider.ts';

import { type SqliteVolumeInputs, sqliteVolumeProvider } from './sqlite-provider.ts';

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
