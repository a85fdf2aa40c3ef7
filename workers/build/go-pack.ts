import fs from 'node:fs';
import path from 'node:path';
import type { BaseImages, RenderOptions } from './dockerfile.ts';
import { DetectError, type GoPlan, type Overrides } from './plan.ts';
import { type Cache, copyFiles, runStep, startCmd } from './run-step.ts';

/**
 * Go: modules downloaded from the module proxy, a static binary (CGO_ENABLED=0) built from the
 * main package at the root or the one in cmd/<name>, run in the small runtime image.
 */
export function detectGo(dir: string, o: Overrides): GoPlan {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  const gomod = fs.readFileSync(path.join(dir, 'go.mod'), 'utf8');
  const module = gomod.match(/^module\s+"?([^\s"]+)"?/m)?.[1];
  if (!module) throw new DetectError('go.mod has no module line');
  const goVersion = gomod.match(/^go\s+(\S+)/m)?.[1];
  const notes = [`detected Go (go.mod: module ${module}${goVersion ? `, go ${goVersion}` : ''})`];

  const vendored = has('vendor/modules.txt');
  const install = o.installCommand ?? (vendored ? undefined : 'go mod download');
  if (install) notes.push(`install: ${install}${o.installCommand ? ' (install_command)' : ''}`);
  else notes.push('modules: vendor/ (nothing to download)');

  let build = o.buildCommand;
  if (!build) {
    const pkg = mainPackage(dir, module);
    build = `CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app ${pkg}`;
  }
  notes.push(`build: ${build}${o.buildCommand ? ' (build_command; leave the binary in /out)' : ''}`);
  const start = o.startCommand ?? 'app';
  notes.push(`start: ${start}${o.startCommand ? ' (start_command)' : ' (the binary, on PATH)'}`);
  const installFiles = o.installCommand ? ['.'] : ['go.mod', 'go.sum'].filter(has);
  return { pack: 'go', installFiles, install, build, start, notes };
}

/** "." when the root is package main, else the single (or module-named) cmd/<name>. */
function mainPackage(dir: string, module: string): string {
  const isMain = (d: string) =>
    fs.existsSync(d) &&
    fs
      .readdirSync(d)
      .filter((f) => f.endsWith('.go') && !f.endsWith('_test.go'))
      .some((f) => /^package\s+main\b/m.test(fs.readFileSync(path.join(d, f), 'utf8')));
  if (isMain(dir)) return '.';
  const cmdDir = path.join(dir, 'cmd');
  const commands = fs.existsSync(cmdDir)
    ? fs
        .readdirSync(cmdDir, { withFileTypes: true })
        .filter((e) => e.isDirectory() && isMain(path.join(cmdDir, e.name)))
        .map((e) => e.name)
        .sort()
    : [];
  const chosen = commands.length === 1 ? commands[0] : commands.find((c) => c === module.split('/').at(-1));
  if (chosen) return `./cmd/${chosen}`;
  throw new DetectError(
    commands.length
      ? `several commands in cmd/ (${commands.join(', ')}): set build_command, e.g. "go build -o /out/app ./cmd/${commands[0]}"`
      : 'go.mod found but no package main at the repo root or in cmd/<name>: set build_command',
  );
}

const GO_CACHES: Cache[] = [{ name: 'gomod', target: '/root/go/pkg/mod' }];
const GO_BUILD_CACHES: Cache[] = [...GO_CACHES, { name: 'gobuild', target: '/root/.cache/go-build' }];

export function goDockerfile(plan: GoPlan, base: BaseImages, o: RenderOptions): string {
  return [
    `FROM ${base.go} AS build`,
    'WORKDIR /src',
    ...(plan.install
      ? [copyFiles(plan.installFiles), runStep(plan.install, { cacheId: o.cacheId, caches: GO_CACHES })]
      : []),
    ...(plan.installFiles.includes('.') ? [] : ['COPY . .']),
    'RUN mkdir -p /out',
    runStep(plan.build ?? 'true', { cacheId: o.cacheId, caches: GO_BUILD_CACHES }),
    '',
    // The runtime: Debian minbase with the binary on PATH and the repo's files (templates,
    // static assets) in the working directory.
    `FROM ${base.runtime}`,
    'WORKDIR /app',
    'COPY . .',
    'COPY --from=build /out/ /usr/local/bin/',
    startCmd(plan.start),
    '',
  ].join('\n');
}
