import fs from 'node:fs';
import path from 'node:path';
import type { BaseImages, RenderOptions } from './dockerfile.ts';
import { detectFramework, isDevStart, type NodePackageJson } from './node-frameworks.ts';
import { nodeMajor } from './node-version.ts';
import { DetectError, type NodePlan, type Overrides } from './plan.ts';
import { type Cache, copyFiles, runStep, startCmd } from './run-step.ts';

/** Package-manager versions used when the repo does not pin one (packageManager field). */
export const DEFAULT_PNPM = '10.34.9';
export const DEFAULT_YARN_CLASSIC = '1.22.22';
export const DEFAULT_YARN_BERRY = '4.18.1';
/** pnpm release lines by lockfile major version (pnpm 9 and later write lockfile 9.0). */
const PNPM_BY_LOCKFILE: Record<string, string> = { '5': '7.33.7', '6': '8.15.9' };

type PackageJson = NodePackageJson;
type Manager = NodePlan['packageManager'];

const LOCKFILES: Record<Manager, string> = {
  npm: 'package-lock.json',
  pnpm: 'pnpm-lock.yaml',
  yarn: 'yarn.lock',
};

/** Node.js: npm, pnpm or yarn, from the packageManager field, else the lockfile. */
export function detectNode(dir: string, o: Overrides): NodePlan {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  let pkg: PackageJson;
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch (err) {
    throw new DetectError(`package.json is not valid JSON: ${(err as Error).message}`);
  }
  const notes = ['detected Node.js (package.json)'];
  const version = nodeMajor(dir, pkg);
  notes.push(`Node.js ${version.major} (${version.why})`);
  const { manager, managerPackage, berry, why } = packageManager(dir, pkg, has);
  notes.push(`package manager: ${manager}${managerPackage ? ` (${managerPackage})` : ''}, ${why}`);
  const locked = has(LOCKFILES[manager]) || (manager === 'npm' && has('npm-shrinkwrap.json'));

  const install =
    o.installCommand ??
    {
      npm: locked ? 'npm ci' : 'npm install',
      pnpm: locked ? 'pnpm install --frozen-lockfile' : 'pnpm install',
      yarn: berry
        ? locked
          ? 'yarn install --immutable'
          : 'yarn install'
        : locked
          ? 'yarn install --frozen-lockfile'
          : 'yarn install',
    }[manager];
  notes.push(
    `install: ${install}${o.installCommand ? ' (install_command)' : locked ? ` (${LOCKFILES[manager]})` : ''}`,
  );
  const run = manager === 'npm' ? 'npm run' : `${manager} run`;
  const build = o.buildCommand ?? (pkg.scripts?.build ? `${run} build` : undefined);
  if (build) notes.push(`build: ${build}${o.buildCommand ? ' (build_command)' : ' (scripts.build)'}`);

  const framework = detectFramework(dir, pkg, o.startCommand !== undefined);
  if (framework) notes.push(framework.note);
  if (framework?.staticRoot && !build)
    throw new DetectError(
      `${framework.name} is served as static files after its build, but package.json has no "scripts.build": add one, or set build_command`,
    );

  // Yarn Plug'n'Play (berry's default) resolves packages only under `yarn node`.
  const node = berry ? 'yarn node' : 'node';
  let start = o.startCommand ?? (framework?.staticRoot ? STATIC_START : framework?.start);
  if (!start && isDevStart(pkg.scripts?.start))
    notes.push(
      `scripts.start runs a development server (${pkg.scripts?.start}); set start_command to a production server`,
    );
  if (!start && pkg.scripts?.start) start = `${manager} start`;
  if (!start && pkg.main) start = `${node} ${pkg.main}`;
  if (!start) {
    const entry = ['server.js', 'index.js', 'app.js', 'main.js'].find(has);
    if (entry) start = `${node} ${entry}`;
  }
  if (!start) {
    throw new DetectError(
      'no start command: add "scripts.start" or "main" to package.json, add server.js or index.js, or set start_command',
    );
  }
  notes.push(`start: ${start}`);

  // The install step sees only the manifest files, so it is reused while they are unchanged —
  // unless it needs more: workspaces, install scripts, yarn berry's .yarn folder.
  const scripts = Object.keys(pkg.scripts ?? {});
  const needsRepo =
    pkg.workspaces !== undefined ||
    has('pnpm-workspace.yaml') ||
    berry ||
    scripts.some((s) => ['preinstall', 'install', 'postinstall', 'prepare'].includes(s));
  const installFiles = needsRepo
    ? ['.']
    : ['package.json', LOCKFILES[manager], 'npm-shrinkwrap.json', '.npmrc', '.yarnrc'].filter(
        (f, i, all) => has(f) && all.indexOf(f) === i,
      );
  return {
    pack: 'node',
    nodeMajor: version.major,
    ...(framework?.staticRoot && !o.startCommand ? { staticRoot: framework.staticRoot } : {}),
    packageManager: manager,
    managerPackage,
    installFiles,
    install,
    build,
    start,
    notes,
  };
}

function packageManager(dir: string, pkg: PackageJson, has: (f: string) => boolean) {
  const field = pkg.packageManager?.trim();
  let manager: Manager;
  let version: string | undefined;
  let why: string;
  if (field) {
    const m = field.match(/^(npm|pnpm|yarn|bun)@(\d+\.\d+\.\d+[\w.-]*)(\+.*)?$/);
    if (!m?.[1] || !m[2])
      throw new DetectError(
        `package.json "packageManager": "${field}" is not <name>@<version>, e.g. "pnpm@10.34.9"`,
      );
    if (m[1] === 'bun')
      throw new DetectError(
        'package.json asks for bun (packageManager); supported: npm, pnpm, yarn. Or add a Dockerfile',
      );
    manager = m[1] as Manager;
    version = m[2];
    why = 'from package.json "packageManager"';
  } else if (has('pnpm-lock.yaml')) {
    manager = 'pnpm';
    why = 'pnpm-lock.yaml';
  } else if (has('yarn.lock')) {
    manager = 'yarn';
    why = 'yarn.lock';
  } else if (
    has('package-lock.json') ||
    has('npm-shrinkwrap.json') ||
    !(has('bun.lockb') || has('bun.lock'))
  ) {
    manager = 'npm';
    why = has('package-lock.json') ? 'package-lock.json' : 'the default';
  } else {
    throw new DetectError(
      'found a bun lockfile: bun is not supported; use npm, pnpm or yarn, or add a Dockerfile',
    );
  }

  const read = (f: string) => (has(f) ? fs.readFileSync(path.join(dir, f), 'utf8') : '');
  // Yarn 2+ ("berry") writes a __metadata block into yarn.lock.
  const berry =
    manager === 'yarn' &&
    (version ? Number(version.split('.')[0]) >= 2 : read('yarn.lock').includes('__metadata:'));
  let managerPackage: string | undefined;
  if (manager === 'pnpm') {
    const lockMajor = read('pnpm-lock.yaml').match(/^lockfileVersion:\s*['"]?(\d+)/m)?.[1] ?? '';
    managerPackage = `pnpm@${version ?? PNPM_BY_LOCKFILE[lockMajor] ?? DEFAULT_PNPM}`;
  } else if (manager === 'yarn') {
    managerPackage = berry
      ? `@yarnpkg/cli-dist@${version ?? DEFAULT_YARN_BERRY}`
      : `yarn@${version ?? DEFAULT_YARN_CLASSIC}`;
  }
  return { manager, managerPackage, berry, why };
}

const CACHES: Record<Manager, Cache[]> = {
  npm: [{ name: 'npm', target: '/root/.npm' }],
  pnpm: [{ name: 'pnpm', target: '/root/.local/share/pnpm/store' }],
  yarn: [
    { name: 'yarn', target: '/usr/local/share/.cache/yarn' },
    { name: 'yarn-berry', target: '/root/.yarn/berry/cache' },
  ],
};

/** How a single-page app's files are served (static-server.mjs, in the node base image). */
const STATIC_START = 'node /usr/local/lib/deploy-mcp/static-server.mjs /site --spa';

export function nodeDockerfile(plan: NodePlan, base: BaseImages, o: RenderOptions): string {
  const image = o.nodeImage ?? base.node;
  // A single-page app: built in one stage, its output folder alone served by the next.
  const serve = plan.staticRoot
    ? [
        '',
        `FROM ${base.node}`,
        'WORKDIR /site',
        `COPY --from=build /app/${plan.staticRoot.replace(/^\.\/|\/$/g, '')}/ ./`,
        startCmd(plan.start),
        '',
      ]
    : ['ENV NODE_ENV=production', startCmd(plan.start), ''];
  return [
    `FROM ${image}${plan.staticRoot ? ' AS build' : ''}`,
    'WORKDIR /app',
    ...(plan.managerPackage
      ? [runStep(`npm install -g ${plan.managerPackage}`, { cacheId: o.cacheId, caches: CACHES.npm })]
      : []),
    // Berry: no telemetry notice; packages in the project's .yarn/cache, inside the image, where
    // Plug'n'Play looks at run time (the cache mount stays a mirror that saves the downloads).
    ...(plan.managerPackage?.startsWith('@yarnpkg/')
      ? ['ENV YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_GLOBAL_CACHE=false']
      : []),
    copyFiles(plan.installFiles),
    ...(plan.install
      ? [runStep(plan.install, { cacheId: o.cacheId, caches: CACHES[plan.packageManager] })]
      : []),
    ...(plan.installFiles.includes('.') ? [] : ['COPY . .']),
    ...(plan.build ? [runStep(plan.build)] : []),
    ...serve,
  ].join('\n');
}
