import fs from 'node:fs';
import path from 'node:path';
import { detectGo } from './go-pack.ts';
import { detectNode } from './node-pack.ts';
import {
  type BuildPlan,
  DetectError,
  type GoPlan,
  type NodePlan,
  type Overrides,
  type PythonPlan,
  type StaticPlan,
} from './plan.ts';
import { detectPython } from './python-pack.ts';

export type { BuildPlan, Overrides } from './plan.ts';
export { DetectError } from './plan.ts';

/**
 * Decides the build plan for the checkout in `dir`, in railpack's order: a Dockerfile (with
 * `build_pack` "auto", the default), then Go, Python, Node.js, a static site, a lone
 * main.py/app.py. `build_pack` "dockerfile" or "static" forces that pack; "railpack" ignores a
 * Dockerfile.
 */
export function detectBuildPlan(dir: string, o: Overrides = {}): BuildPlan {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  const auto = o.buildPack === undefined || o.buildPack === 'auto';
  if (o.buildPack === 'dockerfile' || (auto && has('Dockerfile'))) {
    if (!has('Dockerfile'))
      throw new DetectError('build_pack "dockerfile" needs a Dockerfile at the repo root');
    return { pack: 'dockerfile', dockerfile: 'Dockerfile', notes: ['using the Dockerfile at the repo root'] };
  }
  if (o.buildPack === 'static') return staticPlan(has);
  if (has('go.mod')) return withProcfile(dir, detectGo, o, true);
  if (['requirements.txt', 'pyproject.toml', 'Pipfile'].some(has)) return withProcfile(dir, detectPython, o);
  if (has('package.json')) return withProcfile(dir, detectNode, o);
  if (['index.html', 'public/index.html', 'dist/index.html'].some(has)) return staticPlan(has);
  if (has('main.py') || has('app.py')) return withProcfile(dir, detectPython, o);
  const found = fs
    .readdirSync(dir)
    .filter((f) => !f.startsWith('.'))
    .slice(0, 10);
  throw new DetectError(
    `cannot tell how to build this repo (top-level files: ${found.join(', ') || 'none'}). Add a package.json ` +
      '(Node.js), requirements.txt or pyproject.toml (Python), go.mod (Go), an index.html (static site) or a ' +
      'Dockerfile, or set build_pack',
  );
}

function staticPlan(has: (f: string) => boolean): StaticPlan {
  const root = ['dist', 'public', 'build', '.'].find((d) => has(path.join(d, 'index.html')));
  if (!root) throw new DetectError('static site: no index.html at the root or in dist/, public/ or build/');
  return { pack: 'static', root, notes: [`static site from ${root === '.' ? 'the repo root' : `${root}/`}`] };
}

/**
 * A Procfile's `web:` line is the start command (Railpack and Heroku's rule) unless start_command
 * is set: the pack runs as if it were start_command. For Go, its first word names the binary,
 * which the image has as `app`.
 */
function procfile(dir: string, o: Overrides, go: boolean): { o: Overrides; web?: string } {
  const file = path.join(dir, 'Procfile');
  if (o.startCommand || !fs.existsSync(file)) return { o };
  const web = fs.readFileSync(file, 'utf8').match(/^web:\s*(.+?)\s*$/m)?.[1];
  if (!web) return { o };
  const start = go ? web.replace(/^\S+/, 'app') : web;
  return { o: { ...o, startCommand: start }, web: start };
}

function withProcfile<P extends NodePlan | PythonPlan | GoPlan>(
  dir: string,
  detectPack: (dir: string, o: Overrides) => P,
  o: Overrides,
  go = false,
): P {
  const p = procfile(dir, o, go);
  const plan = detectPack(dir, p.o);
  if (!p.web) return plan;
  const note = `start: ${p.web}`;
  return {
    ...plan,
    notes: plan.notes.map((n) => (n.startsWith(note) ? `${note} (Procfile web:)` : n)),
  };
}
