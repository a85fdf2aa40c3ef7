import type * as pulumi from '@pulumi/pulumi';

// Serialized into the provider launcher: self-contained (see ../local/providers.ts).

export type SqliteVolumeInputs = {
  /** Host directory mounted into attached containers (the SQLite file and its -wal/-shm live there). */
  dir: string;
};

/**
 * The directory an embedded `sqlite` resource lives in. It sits in the data dir (root only), so
 * only the containers it is mounted into reach it; inside, any uid may write (apps run as their
 * image's user).
 */
export const sqliteVolumeProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: SqliteVolumeInputs) {
    const fs = process.getBuiltinModule('node:fs');
    fs.mkdirSync(inputs.dir, { recursive: true });
    fs.chmodSync(inputs.dir, 0o777);
    return { id: inputs.dir, outs: inputs };
  },
  async diff(_id: string, olds: SqliteVolumeInputs, news: SqliteVolumeInputs) {
    const replaces = olds.dir === news.dir ? [] : ['dir'];
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: false };
  },
  async delete(id: string) {
    process.getBuiltinModule('node:fs').rmSync(id, { recursive: true, force: true });
  },
};
