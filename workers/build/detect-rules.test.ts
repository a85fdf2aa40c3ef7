import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detectBuildPlan, type Overrides } from './detect.ts';
import { type BaseImages, renderDockerfile } from './dockerfile.ts';
import { allows, nodeMajor } from './node-version.ts';
import type { BuildPlan } from './plan.ts';
import { allowsVersion } from './python-version.ts';

const FIXTURES = path.join(import.meta.dirname, '../../test/fixtures/apps');
const BASE: BaseImages = { runtime: 'r', node: 'reg/node:default', python: 'reg/python:1', go: 'reg/go:1' };
const STATIC_START = 'node /usr/local/lib/deploy-mcp/static-server.mjs /site --spa';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'detect-rules-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
let n = 0;
/** A checkout: a fixture copied, with files (path → content) added or replaced. */
function repo(fixture: string | undefined, files: Record<string, string> = {}): string {
  const dir = path.join(work, String(n++));
  fs.mkdirSync(dir, { recursive: true });
  if (fixture) fs.cpSync(path.join(FIXTURES, fixture), dir, { recursive: true });
  for (const [f, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), content);
  }
  return dir;
}
const detect = (fixture: string, o: Overrides = {}) => detectBuildPlan(path.join(FIXTURES, fixture), o);
const pkg = (o: object) => JSON.stringify({ name: 'app', version: '1.0.0', ...o });
const dockerfile = (plan: BuildPlan, nodeImage?: string) =>
  plan.pack === 'dockerfile' ? '' : renderDockerfile(plan, BASE, { nodeImage });

describe('single-page apps are built, then served as static files', () => {
  it('Vite: dist/ in a second stage, with the SPA fallback', () => {
    const plan = detect('vite-spa');
    expect(plan).toMatchObject({
      pack: 'node',
      build: 'npm run build',
      start: STATIC_START,
      staticRoot: 'dist',
    });
    const file = dockerfile(plan);
    expect(file).toMatch(/^FROM reg\/node:default AS build$/m);
    expect(file).toContain('COPY --from=build /app/dist/ ./');
    expect(file.split('\n').filter((l) => l.startsWith('FROM'))).toHaveLength(2);
    expect(file).toContain(JSON.stringify(`exec ${STATIC_START}`));
  });

  it("Create React App: build/, even though scripts.start is react-scripts' development server", () => {
    const plan = detect('cra-app');
    expect(plan).toMatchObject({ start: STATIC_START, staticRoot: 'build' });
    expect(plan.notes).toContain('Create React App: serving build/ as a single-page app');
  });

  it('Vite with an outDir; Astro static; Angular application builder', () => {
    const vite = repo('vite-spa', {
      'vite.config.js': "export default { build: { outDir: 'public_html' } }",
    });
    expect(detectBuildPlan(vite)).toMatchObject({ staticRoot: 'public_html' });
    const astro = repo(undefined, {
      'package.json': pkg({
        scripts: { dev: 'astro dev', build: 'astro build' },
        dependencies: { astro: '^5' },
      }),
    });
    expect(detectBuildPlan(astro)).toMatchObject({ staticRoot: 'dist' });
    const astroServer = repo(undefined, {
      'package.json': pkg({
        scripts: { build: 'astro build', start: 'node ./dist/server/entry.mjs' },
        dependencies: { astro: '^5', '@astrojs/node': '^9' },
      }),
      'astro.config.mjs': "export default { output: 'server', adapter: node({ mode: 'standalone' }) }",
    });
    expect(detectBuildPlan(astroServer)).toMatchObject({ start: 'npm start' });
    const angular = repo(undefined, {
      'package.json': pkg({
        scripts: { start: 'ng serve', build: 'ng build' },
        dependencies: { '@angular/core': '^20' },
      }),
      'angular.json': JSON.stringify({
        projects: {
          shop: {
            architect: {
              build: { builder: '@angular/build:application', options: { outputPath: 'dist/shop' } },
            },
          },
        },
      }),
    });
    expect(detectBuildPlan(angular)).toMatchObject({ staticRoot: 'dist/shop/browser' });
  });

  it('a start_command or a server start keeps the app a server', () => {
    expect(detect('vite-spa', { startCommand: 'npx vite preview' })).toMatchObject({
      start: 'npx vite preview',
    });
    expect(detect('vite-spa', { startCommand: 'npx vite preview' })).not.toHaveProperty('staticRoot');
    const withServer = repo('vite-spa', {
      'package.json': pkg({
        scripts: { build: 'vite build', start: 'node server.js' },
        devDependencies: { vite: '^7' },
      }),
    });
    expect(detectBuildPlan(withServer)).toMatchObject({ start: 'npm start' });
  });

  it('an SPA without a build script is refused with what to add', () => {
    const dir = repo(undefined, {
      'package.json': pkg({
        scripts: { start: 'react-scripts start' },
        dependencies: { 'react-scripts': '5' },
      }),
    });
    // No "react-scripts build": not recognized as an SPA, the dev server stays, with a note.
    expect(detectBuildPlan(dir).notes.join('\n')).toMatch(/scripts\.start runs a development server/);
  });
});

describe('framework starts', () => {
  it.each([
    ['sveltekit-node', 'node build'],
    ['nuxt-app', 'node .output/server/index.mjs'],
    ['nestjs-app', 'npm run start:prod'],
    ['remix-app', 'npm start'],
    ['next-app', 'npm start'],
    ['express-hello', 'npm start'],
  ])('%s starts with %s', (fixture, start) => {
    expect(detect(fixture)).toMatchObject({ pack: 'node', start });
  });

  it('next dev as scripts.start becomes next start', () => {
    const dir = repo('next-app', {
      'package.json': pkg({
        scripts: { build: 'next build', start: 'next dev' },
        dependencies: { next: '^15', react: '^19' },
      }),
    });
    expect(detectBuildPlan(dir)).toMatchObject({ start: 'npx next start' });
  });

  it('SvelteKit without a server adapter is refused with the adapter to add', () => {
    const dir = repo('sveltekit-node', {
      'svelte.config.js':
        "import adapter from '@sveltejs/adapter-auto';\nexport default { kit: { adapter: adapter() } };",
      'package.json': pkg({
        scripts: { build: 'vite build' },
        devDependencies: { '@sveltejs/kit': '^2', '@sveltejs/adapter-auto': '^6', vite: '^7' },
      }),
    });
    expect(() => detectBuildPlan(dir)).toThrow(/add @sveltejs\/adapter-node/);
  });
});

describe('Node.js versions', () => {
  it('.nvmrc picks the base image of that major', () => {
    const plan = detect('node20-nvmrc');
    expect(plan).toMatchObject({ pack: 'node', nodeMajor: 20 });
    expect(plan.notes).toContain('Node.js 20 (.nvmrc: 20)');
    expect(dockerfile(plan, 'reg/node-20:abc')).toMatch(/^FROM reg\/node-20:abc$/m);
  });

  it.each([
    [{ '.nvmrc': 'v22.3.0\n' }, {}, 22],
    [{ '.node-version': 'lts/iron' }, {}, 20],
    [{ '.node-version': 'lts/*' }, {}, 24],
    [{}, { node: '>=18' }, 24],
    [{}, { node: '^18.17.0' }, 18],
    [{}, { node: '>=18 <21' }, 20],
    [{}, { node: '20.x || 22.x' }, 22],
    [{}, { node: '26' }, 26],
    [{}, {}, 24],
  ])('%j with engines %j → Node.js %i', (files, engines, major) => {
    const dir = repo(undefined, { ...files, 'package.json': pkg({ engines }) });
    expect(nodeMajor(dir, { engines })).toMatchObject({ major });
  });

  it('a version not offered is refused by name, with the ones that are', () => {
    const dir = repo(undefined, { '.nvmrc': '16', 'package.json': pkg({ main: 'x.js' }) });
    expect(() => detectBuildPlan(dir)).toThrow(
      '.nvmrc asks for Node.js 16, which is not offered: Node.js 18, 20, 22, 24, 26 are',
    );
    expect(() => nodeMajor(dir, {})).toThrow(/Node\.js 16/);
    const engines = repo(undefined, { 'package.json': pkg({ engines: { node: '<18' } }) });
    expect(() => detectBuildPlan(engines)).toThrow(/engines\.node asks for Node\.js <18/);
  });

  it('semver ranges', () => {
    expect(allows('^20.11.0', 20)).toBe(true);
    expect(allows('^20.11.0', 22)).toBe(false);
    expect(allows('~18.19', 18)).toBe(true);
    expect(allows('>=20.0.0-0', 26)).toBe(true);
    expect(allows('18.x', 20)).toBe(false);
    expect(allows('*', 18)).toBe(true);
    expect(allows('18 - 20', 22)).toBe(false);
    expect(allows('18 - 20', 20)).toBe(true);
  });
});

describe('Python', () => {
  it('uv.lock: its locked versions are exported and pip-installed', () => {
    const plan = detect('fastapi-uv');
    expect(plan).toMatchObject({
      pack: 'python',
      installFiles: ['pyproject.toml', 'uv.lock'],
      start: 'uvicorn main:app --host 0.0.0.0 --port $PORT',
    });
    if (plan.pack !== 'python') throw new Error('not python');
    expect(plan.install).toMatch(
      /uv export --frozen --no-dev .* && pip install -r \/tmp\/requirements\.txt$/,
    );
  });

  it('poetry.lock and Pipfile.lock', () => {
    const poetry = repo(undefined, {
      'pyproject.toml':
        '[tool.poetry]\nname = "x"\n\n[tool.poetry.dependencies]\npython = "^3.11"\nflask = "^3.1"\n',
      'poetry.lock': '# poetry',
      'app.py': 'from flask import Flask\napp = Flask(__name__)\n',
    });
    expect(detectBuildPlan(poetry)).toMatchObject({
      installFiles: ['pyproject.toml', 'poetry.lock'],
      install: expect.stringMatching(/^pip install poetry poetry-plugin-export && poetry export/),
      start: 'python -m flask --app app:app run --host 0.0.0.0 --port $PORT',
    });
    const pipenv = repo(undefined, {
      Pipfile: '[packages]\nfastapi = "*"\nuvicorn = "*"\n\n[requires]\npython_version = "3.11"\n',
      'Pipfile.lock': '{}',
      'main.py': 'from fastapi import FastAPI\napp = FastAPI()\n',
    });
    expect(detectBuildPlan(pipenv)).toMatchObject({
      installFiles: ['Pipfile', 'Pipfile.lock'],
      install: expect.stringMatching(/^pip install pipenv && pipenv requirements/),
      start: 'uvicorn main:app --host 0.0.0.0 --port $PORT',
    });
  });

  it('a Python version not offered is refused by name', () => {
    expect(() => detect('python312-only')).toThrow(
      '.python-version asks for Python 3.12, which is not offered: Python 3.11 and 3.13 are',
    );
    // A range takes 3.11 when it allows it, else 3.13; a range allowing neither is refused.
    const requires = repo('python312-only', { '.python-version': '' });
    const plan = detectBuildPlan(requires);
    expect(plan).toMatchObject({ pythonVersion: '3.13' });
    expect(
      plan.pack === 'python' && renderDockerfile(plan, BASE, { pythonImage: 'reg/python-3.13:x' }),
    ).toMatch(/^FROM reg\/python-3\.13:x$/m);
    expect(detectBuildPlan(repo('python-flask'))).toMatchObject({ pythonVersion: '3.11' });
    const old = repo('python312-only', {
      '.python-version': '',
      'pyproject.toml': '[project]\nname = "x"\nrequires-python = "<3.10"\n',
    });
    expect(() => detectBuildPlan(old)).toThrow(
      /pyproject\.toml requires-python asks for Python <3\.10, which is not offered: Python 3\.11 and 3\.13 are/,
    );
    const runtime = repo('python-flask', { 'runtime.txt': 'python-3.11.9' });
    expect(detectBuildPlan(runtime).notes).toContain('Python 3.11 (runtime.txt: 3.11.9)');
  });

  it('PEP 440 specifiers', () => {
    expect(allowsVersion('>=3.10,<3.13', '3.11')).toBe(true);
    expect(allowsVersion('>= 3.12', '3.11')).toBe(false);
    expect(allowsVersion('~=3.11', '3.11')).toBe(true);
    expect(allowsVersion('~=3.12', '3.11')).toBe(false);
    expect(allowsVersion('==3.11.*', '3.11')).toBe(true);
    expect(allowsVersion('3.11.9', '3.11')).toBe(true);
    expect(allowsVersion('^3.12', '3.11')).toBe(false);
  });

  it('Django: collectstatic at build when STATIC_ROOT is set, migrate before start with a database', () => {
    const plan = detect('django-static');
    expect(plan).toMatchObject({
      build: 'python manage.py collectstatic --noinput',
      start: 'gunicorn mysite.wsgi --bind 0.0.0.0:$PORT',
      preStart: '[ -z "$DATABASE_URL" ] || python manage.py migrate --noinput',
    });
    expect(dockerfile(plan)).toContain(
      JSON.stringify(
        '[ -z "$DATABASE_URL" ] || python manage.py migrate --noinput && exec gunicorn mysite.wsgi --bind 0.0.0.0:$PORT',
      ),
    );
    const noStatic = repo('django-static', { 'mysite/settings.py': 'DEBUG = True\n' });
    expect(detectBuildPlan(noStatic)).toMatchObject({ build: undefined });
  });
});

describe('Procfile and build_pack', () => {
  it('Procfile web: is the start command; for Go its binary is the built app', () => {
    expect(detect('procfile-python')).toMatchObject({ start: 'gunicorn hello:application --workers 2' });
    expect(detect('procfile-python').notes).toContain(
      'start: gunicorn hello:application --workers 2 (Procfile web:)',
    );
    expect(detect('gin-procfile')).toMatchObject({ pack: 'go', start: 'app' });
    expect(detect('procfile-python', { startCommand: 'python x.py' })).toMatchObject({
      start: 'python x.py',
    });
  });

  it('auto (the default) builds a Dockerfile; railpack ignores it; dockerfile forces it', () => {
    const dir = repo('express-hello', { Dockerfile: 'FROM deploy-mcp/node\n' });
    expect(detectBuildPlan(dir).pack).toBe('dockerfile');
    expect(detectBuildPlan(dir, { buildPack: 'auto' }).pack).toBe('dockerfile');
    expect(detectBuildPlan(dir, { buildPack: 'railpack' })).toMatchObject({
      pack: 'node',
      start: 'npm start',
    });
    expect(() => detect('express-hello', { buildPack: 'dockerfile' })).toThrow(/needs a Dockerfile/);
  });
});

describe("yarn 4 (berry), Plug'n'Play or node_modules, in the containment: read-only root, uid 10001, no egress", () => {
  it('installs with the yarn the repo pins, at build time, into the image; starts with that yarn', () => {
    for (const dir of [
      path.join(FIXTURES, 'yarn-berry-hello'),
      repo('yarn-berry-hello', { '.yarnrc.yml': 'nodeLinker: node-modules\n' }),
    ]) {
      const plan = detectBuildPlan(dir);
      expect(plan).toMatchObject({
        pack: 'node',
        packageManager: 'yarn',
        managerPackage: '@yarnpkg/cli-dist@4.18.1',
        install: 'yarn install --immutable',
        // .yarnrc.yml, .yarn/releases and plugins are read by the install.
        installFiles: ['.'],
        start: 'yarn start',
      });
      const file = dockerfile(plan);
      // yarn is in the image (no corepack download at run time: apps have no egress) …
      expect(file).toMatch(/npm install -g @yarnpkg\/cli-dist@4\.18\.1/);
      expect(file).not.toMatch(/corepack/);
      // … and so are the packages: in /app/.yarn/cache, not a global cache under the build's HOME
      // (at run time HOME is an empty tmpfs of the app's own).
      expect(file).toMatch(/^ENV .*YARN_ENABLE_GLOBAL_CACHE=false/m);
      expect(file.indexOf('YARN_ENABLE_GLOBAL_CACHE=false')).toBeLessThan(file.indexOf('yarn install'));
      expect(file).toMatch(/^LABEL io\.deploy-mcp\.read-only-root="true"$/m);
      expect(file).toContain(JSON.stringify('exec yarn start'));
    }
  });

  it("without scripts.start, runs the entry point under `yarn node` (Plug'n'Play resolves packages only there)", () => {
    const dir = repo('yarn-berry-hello', {
      'package.json': pkg({ packageManager: 'yarn@4.18.1', dependencies: { ms: '2.1.3' } }),
    });
    expect(detectBuildPlan(dir)).toMatchObject({ start: 'yarn node server.js' });
  });
});
