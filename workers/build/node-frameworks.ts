import fs from 'node:fs';
import path from 'node:path';
import { DetectError } from './plan.ts';

export type NodePackageJson = {
  scripts?: Record<string, string>;
  main?: string;
  packageManager?: string;
  workspaces?: unknown;
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
};

/**
 * What a framework changes in the Node.js plan, following Railpack's rules: a single-page app
 * (Create React App, Vite, Astro without a server adapter, Angular) is built, then its output
 * folder is served as static files; SvelteKit, Nuxt, NestJS and Next.js get their production
 * start; a development server as scripts.start is replaced by the production equivalent.
 */
export type Framework = {
  name: string;
  /** The start command, when the framework decides it (else scripts.start, main, index.js). */
  start?: string;
  /** Serve this folder (relative to the app) as a single-page app after the build. */
  staticRoot?: string;
  /** Why, for the build log. */
  note: string;
};

/** scripts.start values that run a development server, never a production one. */
const DEV_START =
  /^(react-scripts start|vite(\s+(dev|serve))?(\s.*)?|next dev\b.*|nuxt dev\b.*|nuxi dev\b.*|ng serve\b.*|astro dev\b.*|vue-cli-service serve\b.*|webpack (serve|-dev-server)\b.*)$/;

export function detectFramework(
  dir: string,
  pkg: NodePackageJson,
  userStart: boolean,
): Framework | undefined {
  const deps = { ...pkg.dependencies, ...pkg.devDependencies };
  const dep = (name: string) => name in deps;
  const scripts = pkg.scripts ?? {};
  const start = scripts.start?.trim();
  const build = scripts.build ?? '';
  const devStart = start !== undefined && DEV_START.test(start);
  const read = (f: string) => {
    const p = path.join(dir, f);
    return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
  };
  const config = (base: string) =>
    ['ts', 'js', 'mjs', 'mts', 'cjs'].map((ext) => read(`${base}.${ext}`)).join('\n');

  if (dep('@sveltejs/kit')) {
    if (userStart) return undefined;
    const svelteConfig = config('svelte.config');
    if (dep('@sveltejs/adapter-node') || svelteConfig.includes('@sveltejs/adapter-node'))
      return {
        name: 'SvelteKit',
        start: 'node build',
        note: 'SvelteKit with adapter-node: start: node build',
      };
    if (dep('@sveltejs/adapter-static') || svelteConfig.includes('@sveltejs/adapter-static')) {
      const out = svelteConfig.match(/pages:\s*['"]([^'"]+)['"]/)?.[1] ?? 'build';
      return { name: 'SvelteKit', staticRoot: out, note: `SvelteKit with adapter-static: serving ${out}/` };
    }
    throw new DetectError(
      'SvelteKit needs an adapter that makes a server or static files here: add @sveltejs/adapter-node ' +
        '(npm i -D @sveltejs/adapter-node, and use it in svelte.config.js), or set start_command',
    );
  }
  if (dep('nuxt')) {
    if (userStart || (start && !devStart)) return undefined;
    return {
      name: 'Nuxt',
      start: 'node .output/server/index.mjs',
      note: 'Nuxt: start: node .output/server/index.mjs (the output of nuxt build)',
    };
  }
  if (dep('next')) {
    if (userStart || (start && !devStart)) return undefined;
    return { name: 'Next.js', start: 'npx next start', note: 'Next.js: start: next start' };
  }
  if (dep('@nestjs/core')) {
    if (userStart) return undefined;
    if (scripts['start:prod'] && (!start || /^nest start\b/.test(start)))
      return { name: 'NestJS', start: scriptRun(pkg, 'start:prod'), note: 'NestJS: scripts.start:prod' };
    if (!start)
      return { name: 'NestJS', start: 'node dist/main', note: 'NestJS: start: node dist/main (nest build)' };
    return undefined;
  }
  if (dep('@remix-run/serve') || dep('@react-router/serve') || dep('@remix-run/node')) return undefined;
  if (userStart || (start && !devStart)) return undefined;

  if (dep('react-scripts') && /react-scripts build/.test(build))
    return {
      name: 'Create React App',
      staticRoot: 'build',
      note: 'Create React App: serving build/ as a single-page app',
    };
  if (dep('@angular/core') && /ng build/.test(build)) {
    const out = angularOutput(read('angular.json'));
    return { name: 'Angular', staticRoot: out, note: `Angular: serving ${out}/ as a single-page app` };
  }
  if (dep('astro') && /astro build/.test(build)) {
    const astroConfig = config('astro.config');
    if (/output:\s*['"]server['"]|adapter:/.test(astroConfig)) return undefined;
    return { name: 'Astro', staticRoot: 'dist', note: 'Astro (static output): serving dist/' };
  }
  if (dep('vite') && /vite build|vite-plugin|tsc.*&&\s*vite build/.test(build)) {
    const out = config('vite.config').match(/outDir:\s*['"]([^'"]+)['"]/)?.[1] ?? 'dist';
    return { name: 'Vite', staticRoot: out, note: `Vite: serving ${out}/ as a single-page app` };
  }
  return undefined;
}

/** True when scripts.start runs a development server. */
export function isDevStart(start: string | undefined): boolean {
  return start !== undefined && DEV_START.test(start.trim());
}

function scriptRun(pkg: NodePackageJson, script: string): string {
  const field = pkg.packageManager ?? '';
  const manager = field.startsWith('pnpm') ? 'pnpm' : field.startsWith('yarn') ? 'yarn' : 'npm';
  return `${manager} run ${script}`;
}

/** Angular's output folder: the first project's outputPath; the application builder adds browser/. */
function angularOutput(angularJson: string): string {
  try {
    const config = JSON.parse(angularJson) as {
      projects?: Record<
        string,
        { architect?: { build?: { builder?: string; options?: { outputPath?: string | { base: string } } } } }
      >;
    };
    const [name, project] = Object.entries(config.projects ?? {})[0] ?? [];
    const build = project?.architect?.build;
    const output = build?.options?.outputPath;
    const base = typeof output === 'string' ? output : (output?.base ?? `dist/${name}`);
    return build?.builder?.endsWith(':application') ? `${base}/browser` : base;
  } catch {
    return 'dist';
  }
}
