import fs from 'node:fs';
import path from 'node:path';

/** What to build and run, decided from the repo's files (railpack-style rules) and overrides. */
export type BuildPlan =
  | {
      pack: 'node';
      packageManager: 'npm';
      install: string;
      build: string | undefined;
      start: string;
      /** Human-readable reasons, shown in the build log. */
      notes: string[];
    }
  | { pack: 'static'; root: string; notes: string[] }
  | { pack: 'dockerfile'; dockerfile: string; notes: string[] };

export type Overrides = {
  buildPack?: 'railpack' | 'dockerfile' | 'static' | undefined;
  installCommand?: string | undefined;
  buildCommand?: string | undefined;
  startCommand?: string | undefined;
};

/** A build-pack failure the user can fix in their repo; the message says how. */
export class DetectError extends Error {
  override name = 'DetectError';
}

type PackageJson = { scripts?: Record<string, string>; main?: string; packageManager?: string };

/** Decides the build plan for the checkout in `dir`. */
export function detectBuildPlan(dir: string, o: Overrides = {}): BuildPlan {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  if (o.buildPack === 'dockerfile' || (o.buildPack !== 'static' && has('Dockerfile'))) {
    if (!has('Dockerfile'))
      throw new DetectError('build_pack "dockerfile" needs a Dockerfile at the repo root');
    return { pack: 'dockerfile', dockerfile: 'Dockerfile', notes: ['using the Dockerfile at the repo root'] };
  }
  if (o.buildPack === 'static') return staticPlan(has);
  if (has('package.json')) return nodePlan(dir, o);
  if (has('index.html') || has('public/index.html') || has('dist/index.html')) return staticPlan(has);
  const found = fs
    .readdirSync(dir)
    .filter((f) => !f.startsWith('.'))
    .slice(0, 10);
  if (has('requirements.txt') || has('pyproject.toml') || has('go.mod')) {
    throw new DetectError(
      `found ${has('go.mod') ? 'a Go module' : 'a Python project'}; this server builds Node.js apps, static sites ` +
        'and Dockerfiles so far: add a Dockerfile, or set build_pack "dockerfile"',
    );
  }
  throw new DetectError(
    `cannot tell how to build this repo (top-level files: ${found.join(', ') || 'none'}). Add a package.json ` +
      '(Node.js), an index.html (static site) or a Dockerfile, or set build_pack',
  );
}

function nodePlan(dir: string, o: Overrides): BuildPlan {
  let pkg: PackageJson;
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch (err) {
    throw new DetectError(`package.json is not valid JSON: ${(err as Error).message}`);
  }
  const notes = ['detected Node.js (package.json)'];
  const manager = pkg.packageManager?.split('@')[0];
  if (manager && manager !== 'npm') {
    throw new DetectError(
      `package.json asks for ${manager} (packageManager); only npm is supported so far. Remove the field ` +
        'to build with npm, or set install_command',
    );
  }
  const locked = fs.existsSync(path.join(dir, 'package-lock.json'));
  const install = o.installCommand ?? (locked ? 'npm ci' : 'npm install');
  notes.push(
    `install: ${install}${o.installCommand ? ' (install_command)' : locked ? ' (package-lock.json)' : ''}`,
  );
  const build = o.buildCommand ?? (pkg.scripts?.build ? 'npm run build' : undefined);
  if (build) notes.push(`build: ${build}${o.buildCommand ? ' (build_command)' : ' (scripts.build)'}`);
  let start = o.startCommand;
  if (!start && pkg.scripts?.start) start = 'npm start';
  if (!start && pkg.main) start = `node ${pkg.main}`;
  if (!start) {
    const entry = ['server.js', 'index.js', 'app.js', 'main.js'].find((f) =>
      fs.existsSync(path.join(dir, f)),
    );
    if (entry) start = `node ${entry}`;
  }
  if (!start) {
    throw new DetectError(
      'no start command: add "scripts.start" or "main" to package.json, add server.js or index.js, or set start_command',
    );
  }
  notes.push(`start: ${start}`);
  return { pack: 'node', packageManager: 'npm', install, build, start, notes };
}

function staticPlan(has: (f: string) => boolean): BuildPlan {
  const root = ['dist', 'public', 'build', '.'].find((d) => has(path.join(d, 'index.html')));
  if (!root) throw new DetectError('static site: no index.html at the root or in dist/, public/ or build/');
  return { pack: 'static', root, notes: [`static site from ${root === '.' ? 'the repo root' : `${root}/`}`] };
}
