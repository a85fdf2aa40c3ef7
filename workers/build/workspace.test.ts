import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addFileIfMissing, assertContained } from './workspace.ts';

let work: string;
let repo: string;
beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'workspace-test-'));
  repo = path.join(work, 'repo');
  fs.mkdirSync(path.join(repo, 'src'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'src', 'index.js'), 'console.log(1)');
  fs.writeFileSync(path.join(work, 'secret.key'), 'the master key');
});
afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

const link = (target: string, at: string) => {
  fs.mkdirSync(path.dirname(path.join(repo, at)), { recursive: true });
  fs.symlinkSync(target, path.join(repo, at));
};

describe('assertContained', () => {
  it('accepts links that stay inside the repo, dangling ones included', () => {
    link('src/index.js', 'main.js');
    link('../src', 'lib/src');
    link('dist/server.js', 'server.js'); // made by the build
    link('.', 'self');
    expect(() => assertContained(repo)).not.toThrow();
  });

  it.each([
    ['an absolute path to a host file', '/etc/passwd', 'package.json'],
    ['the process environment', '/proc/self/environ', 'Dockerfile'],
    ['a file beside the repo', '../secret.key', 'Dockerfile'],
    ['a folder above the repo, deep inside', '../../..', 'a/b/up'],
    ['a missing file outside (a write target)', '../created-by-worker', '.dockerignore'],
  ])('refuses a link to %s, naming the link', (_what, target, at) => {
    link(target, at);
    expect(() => assertContained(repo)).toThrow(new RegExp(`symbolic link ${at} points outside`));
  });

  it.each([
    ['an existing file', 'd/d/../secret.key'],
    ['a missing file (a write target)', 'd/d/../../created-by-worker'],
  ])('judges a link to %s by where the kernel resolves it, not by its text', (_what, target) => {
    // "d/d/.." reads as inside the repo, but d -> . makes it the folder above the repo.
    link('.', 'd');
    link(target, 'x');
    expect(() => assertContained(repo)).toThrow(/symbolic link x points outside/);
  });

  it('refuses a loop of links', () => {
    link('b', 'a');
    link('a', 'b');
    expect(() => assertContained(repo)).toThrow(/symbolic link a points outside/);
  });
});

describe('addFileIfMissing', () => {
  it('adds the file when nothing is there', () => {
    expect(addFileIfMissing(path.join(repo, '.dockerignore'), 'node_modules\n')).toBe(true);
    expect(fs.readFileSync(path.join(repo, '.dockerignore'), 'utf8')).toBe('node_modules\n');
  });

  it("keeps the repo's own file", () => {
    fs.writeFileSync(path.join(repo, '.dockerignore'), 'mine');
    expect(addFileIfMissing(path.join(repo, '.dockerignore'), 'ours')).toBe(false);
    expect(fs.readFileSync(path.join(repo, '.dockerignore'), 'utf8')).toBe('mine');
  });

  it('never writes through a dangling link', () => {
    link(path.join(work, 'created-by-worker'), '.dockerignore');
    expect(addFileIfMissing(path.join(repo, '.dockerignore'), 'ours')).toBe(false);
    expect(fs.existsSync(path.join(work, 'created-by-worker'))).toBe(false);
  });
});
