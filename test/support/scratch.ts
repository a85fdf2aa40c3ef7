import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Repository root (tests run from anywhere). */
export const repoRoot = path.resolve(import.meta.dirname, '../..');

/** A fresh temporary directory; `cleanup` removes it. */
export function scratchDir(prefix: string, parent = os.tmpdir()): { dir: string; cleanup: () => void } {
  fs.mkdirSync(parent, { recursive: true });
  const dir = fs.mkdtempSync(path.join(parent, `${prefix}-`));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
