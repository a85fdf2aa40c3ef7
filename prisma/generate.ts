// Generates the two Prisma clients from the one schema (prisma/schema.prisma):
//   prisma/generated/postgresql  (production)   and   prisma/generated/sqlite  (embedded default).
// A schema names one provider, so the SQLite variant is derived by substitution. Offline:
// `prisma generate` needs no engine binary with driver adapters; it only checks that
// PRISMA_SCHEMA_ENGINE_BINARY names an existing file.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const prismaDir = import.meta.dirname;
const schemaFile = path.join(prismaDir, 'schema.prisma');
/** The derived SQLite schema; also what the SQLite drift check compares against. */
export const SQLITE_SCHEMA_FILE = path.join(prismaDir, 'generated', 'schema.sqlite.prisma');

export function sqliteSchema(source: string): string {
  const out = source
    .replace(/provider(\s*)=\s*"postgresql"/, 'provider$1= "sqlite"')
    .replace(/output(\s*)=\s*"\.\/generated\/postgresql"/, 'output$1= "./sqlite"');
  if (!out.includes('"sqlite"') || !out.includes('"./sqlite"')) {
    throw new Error('prisma/schema.prisma: provider or output line not found for the SQLite variant');
  }
  return out;
}

export function generate() {
  fs.mkdirSync(path.dirname(SQLITE_SCHEMA_FILE), { recursive: true });
  fs.writeFileSync(SQLITE_SCHEMA_FILE, sqliteSchema(fs.readFileSync(schemaFile, 'utf8')));
  const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: '1', PRISMA_SCHEMA_ENGINE_BINARY: '/bin/true' };
  const bin = path.resolve(prismaDir, '../node_modules/.bin/prisma');
  for (const schema of [schemaFile, SQLITE_SCHEMA_FILE]) {
    execFileSync(bin, ['generate', '--schema', schema], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  }
}

if (import.meta.main) generate();
