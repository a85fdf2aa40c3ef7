import fs from 'node:fs';
import path from 'node:path';
import { detectGo } from './go-pack.ts';
import { detectNode } from './node-pack.ts';
import { type BuildPlan, DetectError, type Overrides, type StaticPlan } from './plan.ts';
import { detectPython } from './python-pack.ts';

export type { BuildPlan, Overrides } from './plan.ts';
export { DetectError } from './plan.ts';

/**
 * Decides the build plan for the checkout in `dir`, in railpack's order: a Dockerfile, then Go,
 * Python, Node.js, a static site, a lone main.py/app.py. `build_pack` "dockerfile" or "static"
 * forces that pack.
 */
export function detectBuildPlan(dir: string, o: Overrides = {}): BuildPlan {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  if (o.buildPack === 'dockerfile' || (o.buildPack !== 'static' && has('Dockerfile'))) {
    if (!has('Dockerfile'))
      throw new DetectError('build_pack "dockerfile" needs a Dockerfile at the repo root');
    return { pack: 'dockerfile', dockerfile: 'Dockerfile', notes: ['using the Dockerfile at the repo root'] };
  }
  if (o.buildPack === 'static') return staticPlan(has);
  if (has('go.mod')) return detectGo(dir, o);
  if (has('requirements.txt') || has('pyproject.toml')) return detectPython(dir, o);
  if (has('package.json')) return detectNode(dir, o);
  if (['index.html', 'public/index.html', 'dist/index.html'].some(has)) return staticPlan(has);
  if (has('main.py') || has('app.py')) return detectPython(dir, o);
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
