// Schema drift: compares a live database (reached through a Prisma driver adapter) with
// prisma/schema.prisma, offline, using @prisma/schema-engine-wasm (the same wasm the prisma
// CLI bundles; the 7.x CLI itself only diffs through the native engine, unreachable here).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { PrismaLibSql } from '@prisma/adapter-libsql';
import { PrismaPg } from '@prisma/adapter-pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import pg from 'pg';
import { SQLITE_SCHEMA_FILE } from '../../prisma/generate.ts';
import { isSqliteUrl } from './sql-connection.ts';

const POSTGRES_SCHEMA_FILE = path.resolve(import.meta.dirname, '../../prisma/schema.prisma');
const MIGRATIONS_TABLE = '_deploy_mcp_migrations';

export type DriftResult = {
  /** True when the database matches the schema. */
  inSync: boolean;
  /** SQL that would bring the database to the schema (empty when in sync). */
  script: string;
};

/** Diffs the database at `url` against the Prisma schema for its provider. */
export async function diffDatabaseToSchema(url: string): Promise<DriftResult> {
  const SchemaEngine = await loadSchemaEngine();
  const sqlite = isSqliteUrl(url);
  const factory = sqlite
    ? new PrismaLibSql({ url })
    : new PrismaPg({ connectionString: url, Client: CharAsTextClient } as ConstructorParameters<
        typeof PrismaPg
      >[0]);
  const adapter = bindMigrationAwareSqlAdapterFactory(factory);
  const schemaPath = sqlite ? SQLITE_SCHEMA_FILE : POSTGRES_SCHEMA_FILE;
  const file = { path: schemaPath, content: fs.readFileSync(schemaPath, 'utf8') };
  const engine = await SchemaEngine.new(
    { datamodels: [[file.path, file.content]] },
    () => undefined,
    adapter,
  );
  try {
    const res = await engine.diff({
      from: { tag: 'schemaDatasource', files: [file], configDir: path.dirname(schemaPath) },
      to: { tag: 'schemaDatamodel', files: [file] },
      script: true,
      exitCode: true,
      // Our migration ledger is not part of the Prisma schema.
      filters: {
        externalTables: [sqlite ? MIGRATIONS_TABLE : `public.${MIGRATIONS_TABLE}`],
        externalEnums: [],
      },
    });
    const script = (res.stdout ?? '').trim();
    return {
      inSync: res.exitCode === 0,
      script: script.startsWith('-- This is an empty migration') ? '' : script,
    };
  } catch (err) {
    // Adapter errors are parked in a registry and referenced by id.
    const registry = (adapter as { errorRegistry?: { consumeError?: (id: number) => { error: unknown } } })
      .errorRegistry;
    const id = (err as { id?: unknown }).id;
    const parked = typeof id === 'number' ? registry?.consumeError?.(id) : undefined;
    throw parked?.error ?? err;
  } finally {
    engine.free();
  }
}

type SchemaEngineClass = typeof import('@prisma/schema-engine-wasm').SchemaEngine;
type WasmApi = {
  instantiate: (
    bytes: Buffer,
    imports: object,
  ) => Promise<{ instance: { exports: Record<string, unknown> } }>;
};
let engineClass: Promise<SchemaEngineClass> | undefined;

/** Instantiates the wasm once per process: a second instantiation corrupts its string views. */
function loadSchemaEngine(): Promise<SchemaEngineClass> {
  engineClass ??= (async () => {
    const bg = (await import('@prisma/schema-engine-wasm/schema_engine_bg')) as unknown as {
      __wbg_set_wasm: (exports: Record<string, unknown>) => void;
      SchemaEngine: SchemaEngineClass;
    };
    // Instantiated by hand rather than through ESM-wasm integration (still experimental).
    const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    const require = createRequire(import.meta.url);
    const wasmPath = path.join(
      path.dirname(require.resolve('@prisma/schema-engine-wasm')),
      'schema_engine_bg.wasm',
    );
    const { instance } = await wasm.instantiate(fs.readFileSync(wasmPath), { './schema_engine_bg.js': bg });
    bg.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)();
    return bg.SchemaEngine;
  })();
  return engineClass;
}

/**
 * The schema engine's PostgreSQL describer reads pg_catalog columns of type "char" (OID 18),
 * which @prisma/adapter-pg 7.10 cannot deserialize ("Column type 'char' could not be
 * deserialized"). Report them as text (OID 25). Used only for drift checks.
 */
class CharAsTextClient extends pg.Client {
  override query(...args: unknown[]): never {
    const last = args[args.length - 1];
    const patch = (res: unknown) => {
      for (const r of Array.isArray(res) ? res : [res]) {
        for (const f of (r as { fields?: { dataTypeID: number }[] })?.fields ?? []) {
          if (f.dataTypeID === 18) f.dataTypeID = 25;
        }
      }
      return res;
    };
    const query = super.query as (...a: unknown[]) => unknown;
    if (typeof last === 'function') {
      const cb = args.pop() as (err: unknown, res: unknown) => void;
      return query.call(this, ...args, (err: unknown, res: unknown) =>
        cb(err, err ? res : patch(res)),
      ) as never;
    }
    const result = query.apply(this, args) as Promise<unknown> | undefined;
    return (result && typeof result.then === 'function' ? result.then(patch) : result) as never;
  }
}
