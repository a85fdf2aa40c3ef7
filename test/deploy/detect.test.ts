import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detectBuildPlan, type Overrides } from '../../workers/build/detect.ts';
import { renderDockerfile } from '../../workers/build/dockerfile.ts';
import { scratchDir } from '../support/scratch.ts';

const work = scratchDir('detect');
afterAll(() => work.cleanup());

let n = 0;
/** A checkout holding `files` (path → content). */
function repo(files: Record<string, string>): string {
  const dir = path.join(work.dir, String(n++));
  for (const [f, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), content);
  }
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

const pkg = (o: object) => JSON.stringify({ name: 'app', version: '1.0.0', ...o });
const FLASK_APP = 'from flask import Flask\napp = Flask(__name__)\n';
const FASTAPI_APP = 'from fastapi import FastAPI\n\napp = FastAPI()\n';
const GO_MAIN = 'package main\n\nfunc main() {}\n';

type Case = [string, Record<string, string>, Overrides, Record<string, unknown>];

describe('build-pack detection', () => {
  it.each<Case>([
    // Node.js
    [
      'npm with a lockfile',
      { 'package.json': pkg({ scripts: { start: 'node s.js', build: 'tsc' } }), 'package-lock.json': '{}' },
      {},
      {
        pack: 'node',
        packageManager: 'npm',
        managerPackage: undefined,
        installFiles: ['package.json', 'package-lock.json'],
        install: 'npm ci',
        build: 'npm run build',
        start: 'npm start',
      },
    ],
    [
      'npm without a lockfile, start from main',
      { 'package.json': pkg({ main: 'srv.js' }), '.npmrc': 'x' },
      {},
      {
        packageManager: 'npm',
        install: 'npm install',
        start: 'node srv.js',
        installFiles: ['package.json', '.npmrc'],
      },
    ],
    [
      'pnpm from pnpm-lock.yaml (lockfile 9: the pinned pnpm)',
      {
        'package.json': pkg({ scripts: { start: 'node s.js' } }),
        'pnpm-lock.yaml': "lockfileVersion: '9.0'\n",
      },
      {},
      {
        packageManager: 'pnpm',
        managerPackage: 'pnpm@10.34.9',
        install: 'pnpm install --frozen-lockfile',
        start: 'pnpm start',
        installFiles: ['package.json', 'pnpm-lock.yaml'],
      },
    ],
    [
      'pnpm 8 for a lockfile 6.0',
      { 'package.json': pkg({ main: 'i.js' }), 'pnpm-lock.yaml': "lockfileVersion: '6.0'\n" },
      {},
      { managerPackage: 'pnpm@8.15.9', start: 'node i.js' },
    ],
    [
      'pnpm at the version of packageManager (hash suffix ignored)',
      {
        'package.json': pkg({
          packageManager: 'pnpm@9.15.9+sha512.abc',
          scripts: { build: 'vite build', start: 'x' },
        }),
      },
      {},
      {
        packageManager: 'pnpm',
        managerPackage: 'pnpm@9.15.9',
        install: 'pnpm install',
        build: 'pnpm run build',
      },
    ],
    [
      'yarn classic from yarn.lock',
      { 'package.json': pkg({ scripts: { start: 'node s.js' } }), 'yarn.lock': '# yarn lockfile v1\n' },
      {},
      {
        packageManager: 'yarn',
        managerPackage: 'yarn@1.22.22',
        install: 'yarn install --frozen-lockfile',
        start: 'yarn start',
      },
    ],
    [
      "yarn berry from packageManager: immutable install, the whole repo, Plug'n'Play start",
      {
        'package.json': pkg({ packageManager: 'yarn@4.5.0', main: 'index.js' }),
        'yarn.lock': '__metadata:\n',
      },
      {},
      {
        managerPackage: '@yarnpkg/cli-dist@4.5.0',
        install: 'yarn install --immutable',
        installFiles: ['.'],
        start: 'yarn node index.js',
      },
    ],
    [
      'workspaces install with the whole repo',
      { 'package.json': pkg({ workspaces: ['packages/*'], scripts: { start: 'x' } }) },
      {},
      { installFiles: ['.'] },
    ],
    [
      'install scripts install with the whole repo',
      {
        'package.json': pkg({ scripts: { postinstall: 'node setup.js', start: 'x' } }),
        'package-lock.json': '{}',
      },
      {},
      { installFiles: ['.'] },
    ],
    [
      'node overrides',
      { 'package.json': pkg({}), 'index.js': '' },
      { installCommand: 'npm i --omit=dev', buildCommand: 'make', startCommand: 'node dist/a.js' },
      { install: 'npm i --omit=dev', build: 'make', start: 'node dist/a.js' },
    ],
    // Python
    [
      'Flask without gunicorn: its own server on $PORT',
      { 'requirements.txt': 'Flask==3.1.1\n', 'app.py': FLASK_APP },
      {},
      {
        pack: 'python',
        install: 'pip install -r requirements.txt',
        installFiles: ['requirements.txt'],
        start: 'python -m flask --app app:app run --host 0.0.0.0 --port $PORT',
      },
    ],
    [
      'Flask app factory served by gunicorn',
      {
        'requirements.txt': 'flask>=3\ngunicorn==23.0.0\n',
        'main.py': 'from flask import Flask\ndef create_app():\n    return Flask(__name__)\n',
      },
      {},
      { start: 'gunicorn --bind 0.0.0.0:$PORT main:create_app()' },
    ],
    [
      'FastAPI with uvicorn',
      { 'requirements.txt': 'fastapi\nuvicorn[standard]==0.30.0\n', 'main.py': FASTAPI_APP },
      {},
      { start: 'uvicorn main:app --host 0.0.0.0 --port $PORT' },
    ],
    [
      'FastAPI from pyproject.toml [project] (fastapi[standard] brings uvicorn), app in a package',
      {
        'pyproject.toml': '[project]\nname = "api"\ndependencies = ["fastapi[standard]>=0.110"]\n',
        'app/main.py': 'import fastapi\napi: fastapi.FastAPI = fastapi.FastAPI()\n',
      },
      {},
      { installFiles: ['pyproject.toml'], start: 'uvicorn app.main:api --host 0.0.0.0 --port $PORT' },
    ],
    [
      'Django via manage.py, served by gunicorn',
      {
        'requirements.txt': 'Django==5.1\ngunicorn\n',
        'manage.py': "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
        'mysite/wsgi.py': '',
        'mysite/settings.py': '',
      },
      {},
      { start: 'gunicorn mysite.wsgi --bind 0.0.0.0:$PORT' },
    ],
    [
      'Django without gunicorn: runserver on $PORT',
      { 'requirements.txt': 'django\n', 'manage.py': '', 'proj/wsgi.py': '' },
      {},
      { start: 'python manage.py runserver 0.0.0.0:$PORT --noreload' },
    ],
    [
      'plain Python: main.py',
      { 'requirements.txt': 'requests\n', 'main.py': 'print(1)\n', 'flask_notes.md': '' },
      {},
      { start: 'python main.py' },
    ],
    [
      'a lone app.py: nothing to install',
      { 'app.py': 'print(1)\n' },
      {},
      { pack: 'python', install: undefined, start: 'python app.py' },
    ],
    [
      'requirements that include other files install with the whole repo',
      { 'requirements.txt': '-r base.txt\n', 'base.txt': 'flask\n', 'app.py': FLASK_APP },
      {},
      { installFiles: ['.'] },
    ],
    [
      'pyproject.toml without [project] (poetry): pip install .',
      { 'pyproject.toml': '[tool.poetry]\nname = "x"\n', 'main.py': '' },
      {},
      { install: 'pip install .', installFiles: ['.'], start: 'python main.py' },
    ],
    [
      'python overrides',
      { 'requirements.txt': 'flask\n', 'app.py': FLASK_APP },
      { installCommand: 'pip install .', buildCommand: 'python build.py', startCommand: 'gunicorn app:app' },
      { install: 'pip install .', installFiles: ['.'], build: 'python build.py', start: 'gunicorn app:app' },
    ],
    // Go
    [
      'Go: package main at the root',
      { 'go.mod': 'module example.com/hello\n\ngo 1.24\n', 'go.sum': '', 'main.go': GO_MAIN },
      {},
      {
        pack: 'go',
        install: 'go mod download',
        installFiles: ['go.mod', 'go.sum'],
        build: 'CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app .',
        start: 'app',
      },
    ],
    [
      'Go: the one command in cmd/',
      { 'go.mod': 'module example.com/x\n', 'cmd/server/main.go': GO_MAIN, 'lib.go': 'package x\n' },
      {},
      {
        build: 'CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app ./cmd/server',
        installFiles: ['go.mod'],
      },
    ],
    [
      'Go: of several commands, the one named like the module',
      { 'go.mod': 'module github.com/a/api\n', 'cmd/api/main.go': GO_MAIN, 'cmd/migrate/main.go': GO_MAIN },
      {},
      { build: 'CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app ./cmd/api' },
    ],
    [
      'Go: vendored modules need no download',
      { 'go.mod': 'module m\n', 'vendor/modules.txt': '', 'main.go': GO_MAIN },
      {},
      { install: undefined },
    ],
    [
      'go overrides',
      { 'go.mod': 'module m\n', 'main.go': GO_MAIN },
      { buildCommand: 'go build -o /out/srv ./...', startCommand: 'srv -port $PORT' },
      { build: 'go build -o /out/srv ./...', start: 'srv -port $PORT' },
    ],
    // Which pack wins, and forced packs
    [
      'go.mod wins over package.json',
      { 'go.mod': 'module m\n', 'main.go': GO_MAIN, 'package.json': pkg({}) },
      {},
      { pack: 'go' },
    ],
    [
      'requirements.txt wins over package.json (railpack order)',
      {
        'requirements.txt': 'flask\n',
        'app.py': FLASK_APP,
        'package.json': pkg({ scripts: { start: 'x' } }),
      },
      {},
      { pack: 'python' },
    ],
    ['a Dockerfile wins', { Dockerfile: 'FROM x\n', 'go.mod': 'module m\n' }, {}, { pack: 'dockerfile' }],
    [
      'build_pack static over a package.json',
      { 'package.json': pkg({}), 'public/index.html': '' },
      { buildPack: 'static' },
      { pack: 'static', root: 'public' },
    ],
  ])('%s', (_name, files, overrides, expected) => {
    expect(detectBuildPlan(repo(files), overrides)).toMatchObject(expected);
  });

  it.each<[string, Record<string, string>, Overrides, RegExp]>([
    [
      'an empty repo',
      { 'README.md': '' },
      {},
      /cannot tell how to build this repo \(top-level files: README\.md\)/,
    ],
    ['invalid package.json', { 'package.json': '{ nope' }, {}, /package\.json is not valid JSON/],
    ['bun', { 'package.json': pkg({ packageManager: 'bun@1.1.0' }) }, {}, /bun .*supported: npm, pnpm, yarn/],
    ['a bun lockfile only', { 'package.json': pkg({}), 'bun.lockb': '' }, {}, /bun is not supported/],
    [
      'a malformed packageManager',
      { 'package.json': pkg({ packageManager: 'pnpm' }) },
      {},
      /is not <name>@<version>/,
    ],
    ['node without a start', { 'package.json': pkg({}) }, {}, /no start command: add "scripts.start"/],
    [
      'FastAPI without a server',
      { 'requirements.txt': 'fastapi\n', 'main.py': FASTAPI_APP },
      {},
      /add uvicorn/,
    ],
    [
      'Flask without an app object',
      { 'requirements.txt': 'flask\n', 'util.py': '' },
      {},
      /no `app = Flask\(__name__\)` was found/,
    ],
    [
      'Python without an entry point',
      { 'requirements.txt': 'requests\n' },
      {},
      /add main\.py or app\.py, or set start_command/,
    ],
    [
      'Django without wsgi.py',
      { 'requirements.txt': 'django\n', 'manage.py': '' },
      {},
      /no <project>\/wsgi\.py/,
    ],
    ['go.mod without a module line', { 'go.mod': 'go 1.22\n' }, {}, /go\.mod has no module line/],
    [
      'Go without package main',
      { 'go.mod': 'module m\n', 'lib.go': 'package m\n' },
      {},
      /no package main at the repo root or in cmd/,
    ],
    [
      'Go with several unrelated commands',
      { 'go.mod': 'module m\n', 'cmd/a/main.go': GO_MAIN, 'cmd/b/main.go': GO_MAIN },
      {},
      /several commands in cmd\/ \(a, b\): set build_command/,
    ],
    [
      'build_pack dockerfile without one',
      { 'main.py': '' },
      { buildPack: 'dockerfile' },
      /needs a Dockerfile/,
    ],
    ['build_pack static without index.html', { 'main.py': '' }, { buildPack: 'static' }, /no index\.html/],
  ])('fails clearly: %s', (_name, files, overrides, message) => {
    expect(() => detectBuildPlan(repo(files), overrides)).toThrow(message);
  });
});

describe('generated Dockerfiles', () => {
  const base = { runtime: 'r/runtime:1', node: 'r/node:1', python: 'r/python:1', go: 'r/go:1' };

  it('mount package caches under the service key, so services never share one', () => {
    const plans = {
      pip: detectBuildPlan(repo({ 'requirements.txt': 'flask\n', 'app.py': FLASK_APP })),
      npm: detectBuildPlan(repo({ 'package.json': pkg({ main: 'a.js' }) })),
      pnpm: detectBuildPlan(repo({ 'package.json': pkg({ main: 'a.js' }), 'pnpm-lock.yaml': '' })),
      gomod: detectBuildPlan(repo({ 'go.mod': 'module m\n', 'main.go': GO_MAIN })),
    };
    for (const [cache, plan] of Object.entries(plans)) {
      if (plan.pack === 'dockerfile') throw new Error('unexpected');
      const a = renderDockerfile(plan, base, { cacheId: 'svc-a' });
      expect(a).toContain(`--mount=type=cache,id=svc-a-${cache},`);
      expect(renderDockerfile(plan, base, { cacheId: 'svc-b' })).toContain(`id=svc-b-${cache},`);
      expect(renderDockerfile(plan, base)).not.toContain('type=cache');
    }
    expect(() => renderDockerfile(plans.pip as never, base, { cacheId: 'a b' })).toThrow(/invalid cache id/);
  });

  it('builds Go in the toolchain image and runs the binary in the runtime image', () => {
    const plan = detectBuildPlan(repo({ 'go.mod': 'module m\n', 'main.go': GO_MAIN }));
    if (plan.pack === 'dockerfile') throw new Error('unexpected');
    const dockerfile = renderDockerfile(plan, base);
    expect(dockerfile).toMatch(/^FROM r\/go:1 AS build$/m);
    expect(dockerfile).toMatch(
      /^FROM r\/runtime:1\n[\s\S]*COPY --from=build \/out\/ \/usr\/local\/bin\/\nCMD \["sh", "-c", "exec app"\]/m,
    );
  });

  it('leaves $VARS to the shell that has the build-time env vars loaded', () => {
    const plan = detectBuildPlan(repo({ 'package.json': pkg({ main: 'a.js' }) }), {
      buildCommand: 'echo $TOKEN',
    });
    if (plan.pack === 'dockerfile') throw new Error('unexpected');
    // Exec form: BuildKit runs it without a shell of its own that would expand $TOKEN too early.
    expect(renderDockerfile(plan, base)).toContain(
      '["sh","-c","set -a; [ -f /run/secrets/build-env ] && . /run/secrets/build-env; set +a; echo $TOKEN"]',
    );
  });
});
