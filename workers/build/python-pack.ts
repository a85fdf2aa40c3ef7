import fs from 'node:fs';
import path from 'node:path';
import type { BaseImages, RenderOptions } from './dockerfile.ts';
import { DetectError, type Overrides, type PythonPlan } from './plan.ts';
import { pythonVersion } from './python-version.ts';
import { copyFiles, runStep, startCmd } from './run-step.ts';

/** Where the app object usually lives, in the order railpack looks; then every top-level .py. */
const ENTRY_FILES = [
  'main.py',
  'app.py',
  'server.py',
  'api.py',
  'application.py',
  'wsgi.py',
  'asgi.py',
  'run.py',
  'app/main.py',
  'app/__init__.py',
  'src/main.py',
  'src/app.py',
];

/**
 * Python: dependencies from requirements.txt or pyproject.toml, pip-installed into the base
 * image's venv; the start command from the framework (Django, FastAPI, Flask) or main.py/app.py.
 */
export function detectPython(dir: string, o: Overrides): PythonPlan {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  const read = (f: string) => (has(f) ? fs.readFileSync(path.join(dir, f), 'utf8') : '');
  const notes: string[] = [];
  let install: string | undefined;
  let installFiles: string[] = [];
  const version = pythonVersion(dir);
  notes.push(`Python ${version.version} (${version.why})`);
  const lock = LOCKFILES.find((l) => has(l.file) && l.needs.every(has));
  if (lock && !o.installCommand) {
    notes.push(`detected Python (${lock.file})`);
    install = `${lock.export} && pip install -r /tmp/requirements.txt`;
    installFiles = [...lock.needs, lock.file];
    notes.push(`install: the locked versions of ${lock.file} (${lock.tool}), with pip`);
  } else if (has('requirements.txt')) {
    notes.push('detected Python (requirements.txt)');
    install = 'pip install -r requirements.txt';
    // -r/-c/-e lines and local paths need more of the repo than the file itself.
    const local = /^\s*(-r|-c|-e|--requirement|--constraint|--editable|\.|file:)/m.test(
      read('requirements.txt'),
    );
    installFiles = local ? ['.'] : ['requirements.txt'];
  } else if (has('pyproject.toml')) {
    notes.push('detected Python (pyproject.toml)');
    if (/^\[project\]\s*$/m.test(read('pyproject.toml'))) {
      // The app's dependencies, not the app as a package: most apps are not packaged.
      install =
        'python -c \'import tomllib; d = tomllib.load(open("pyproject.toml", "rb"))["project"]; ' +
        'print("".join(r + "\\n" for r in d.get("dependencies", [])), end="")\' > /tmp/requirements.txt' +
        ' && if [ -s /tmp/requirements.txt ]; then pip install -r /tmp/requirements.txt; fi';
      installFiles = ['pyproject.toml'];
      notes.push('install: the [project] dependencies of pyproject.toml');
    } else {
      install = 'pip install .';
      installFiles = ['.'];
    }
  } else {
    notes.push('detected Python (no requirements.txt or pyproject.toml: nothing to install)');
  }
  if (o.installCommand) {
    install = o.installCommand;
    installFiles = ['.'];
  }
  if (install && !notes.some((n) => n.startsWith('install:')))
    notes.push(`install: ${install}${o.installCommand ? ' (install_command)' : ''}`);

  const deps = `${read('requirements.txt')}\n${read('pyproject.toml')}\n${read('Pipfile')}`;
  const django = has('manage.py') ? djangoSteps(dir) : undefined;
  const build = o.buildCommand ?? django?.build;
  if (build)
    notes.push(`build: ${build}${o.buildCommand ? ' (build_command)' : ' (Django: STATIC_ROOT is set)'}`);
  const start = o.startCommand ?? pythonStart(dir, deps, notes);
  notes.push(`start: ${start}${o.startCommand ? ' (start_command)' : ''}`);
  const preStart = o.startCommand ? undefined : django?.preStart;
  if (preStart) notes.push(`before start: ${preStart}`);
  return {
    pack: 'python',
    pythonVersion: version.version,
    installFiles,
    install,
    build,
    start,
    notes,
    ...(preStart ? { preStart } : {}),
  };
}

/** Lockfiles, in Railpack's order: their locked versions are exported, then pip-installed. */
const LOCKFILES = [
  {
    file: 'uv.lock',
    needs: ['pyproject.toml'],
    tool: 'uv',
    export:
      'pip install uv && uv export --frozen --no-dev --no-emit-project --no-hashes -o /tmp/requirements.txt',
  },
  {
    file: 'poetry.lock',
    needs: ['pyproject.toml'],
    tool: 'poetry',
    export:
      'pip install poetry poetry-plugin-export && poetry export --without-hashes -f requirements.txt -o /tmp/requirements.txt',
  },
  {
    file: 'Pipfile.lock',
    needs: ['Pipfile'],
    tool: 'pipenv',
    export: 'pip install pipenv && pipenv requirements > /tmp/requirements.txt',
  },
];

/**
 * Django's production steps: collectstatic at build when the settings name a STATIC_ROOT, and
 * migrate before each start when a database is attached (DATABASE_URL; without one the default
 * SQLite file would sit on the read-only root).
 */
function djangoSteps(dir: string): { build?: string; preStart: string } {
  const project = (() => {
    try {
      return djangoProject(dir);
    } catch {
      return undefined;
    }
  })();
  const settings = project ? settingsSources(path.join(dir, ...project.split('.'))) : '';
  return {
    ...(/^\s*STATIC_ROOT\s*=/m.test(settings) ? { build: 'python manage.py collectstatic --noinput' } : {}),
    preStart: '[ -z "$DATABASE_URL" ] || python manage.py migrate --noinput',
  };
}

function settingsSources(projectDir: string): string {
  const files = [path.join(projectDir, 'settings.py')];
  const folder = path.join(projectDir, 'settings');
  if (fs.existsSync(folder))
    files.push(
      ...fs
        .readdirSync(folder)
        .filter((f) => f.endsWith('.py'))
        .map((f) => path.join(folder, f)),
    );
  return files.map((f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '')).join('\n');
}

function pythonStart(dir: string, deps: string, notes: string[]): string {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  const dep = (name: string) =>
    new RegExp(`(^|[^a-z0-9_.-])${name}(\\[[^\\]]*\\])?\\s*($|[<>=!~;,\\s"'\\]@])`, 'im').test(deps);
  const gunicorn = dep('gunicorn');

  if (has('manage.py')) {
    const project = djangoProject(dir);
    notes.push(`Django (manage.py, project ${project})`);
    return gunicorn
      ? `gunicorn ${project}.wsgi --bind 0.0.0.0:$PORT`
      : 'python manage.py runserver 0.0.0.0:$PORT --noreload';
  }
  if (dep('fastapi')) {
    const app = findApp(dir, 'FastAPI');
    if (!app)
      throw new DetectError(
        `FastAPI is a dependency but no \`app = FastAPI()\` was found in ${entryList()}: set start_command`,
      );
    if (!dep('uvicorn') && !/fastapi\[[^\]]*(standard|all)/i.test(deps))
      throw new DetectError(
        'FastAPI needs a server: add uvicorn (or fastapi[standard]) to your dependencies, or set start_command',
      );
    notes.push(`FastAPI (${app.file})`);
    return `uvicorn ${app.target} --host 0.0.0.0 --port $PORT`;
  }
  if (dep('flask')) {
    const app = findApp(dir, 'Flask');
    if (!app)
      throw new DetectError(
        `Flask is a dependency but no \`app = Flask(__name__)\` was found in ${entryList()}: set start_command`,
      );
    notes.push(`Flask (${app.file})${gunicorn ? ', served by gunicorn' : ''}`);
    return gunicorn
      ? `gunicorn --bind 0.0.0.0:$PORT ${app.target}`
      : `python -m flask --app ${app.target} run --host 0.0.0.0 --port $PORT`;
  }
  const entry = ['main.py', 'app.py', 'server.py'].find(has);
  if (!entry) throw new DetectError('no start command: add main.py or app.py, or set start_command');
  return `python ${entry}`;
}

function entryList() {
  return `${ENTRY_FILES.slice(0, 3).join(', ')} or another top-level .py file`;
}

/** The module:attribute that holds the app, e.g. "main:app" or "app:create_app()". */
function findApp(dir: string, ctor: 'FastAPI' | 'Flask'): { file: string; target: string } | undefined {
  const topLevel = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.py'))
    .sort();
  for (const file of [...new Set([...ENTRY_FILES, ...topLevel])]) {
    const p = path.join(dir, file);
    if (!fs.existsSync(p)) continue;
    const source = fs.readFileSync(p, 'utf8');
    const module = file.replace(/(\/__init__)?\.py$/, '').replaceAll('/', '.');
    const assigned = source.match(
      new RegExp(`^(\\w+)\\s*(?::\\s*[\\w.]+\\s*)?=\\s*(?:\\w+\\.)?${ctor}\\(`, 'm'),
    );
    if (assigned?.[1]) return { file, target: `${module}:${assigned[1]}` };
    const factory = ctor === 'Flask' ? source.match(/^def (create_app|make_app)\(\s*\)/m) : null;
    if (factory?.[1]) return { file, target: `${module}:${factory[1]}()` };
  }
  return undefined;
}

/** The Django project package: from manage.py's DJANGO_SETTINGS_MODULE, else the folder with wsgi.py. */
function djangoProject(dir: string): string {
  const settings = fs
    .readFileSync(path.join(dir, 'manage.py'), 'utf8')
    .match(/DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)\.settings/)?.[1];
  if (settings && fs.existsSync(path.join(dir, ...settings.split('.'), 'wsgi.py'))) return settings;
  const found = fs
    .readdirSync(dir, { withFileTypes: true })
    .find((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, 'wsgi.py')));
  if (!found)
    throw new DetectError('Django (manage.py) but no <project>/wsgi.py was found: set start_command');
  return found.name;
}

export function pythonDockerfile(plan: PythonPlan, base: BaseImages, o: RenderOptions): string {
  const pip = [{ name: 'pip', target: '/root/.cache/pip' }];
  return [
    `FROM ${o.pythonImage ?? base.python}`,
    'WORKDIR /app',
    ...(plan.install
      ? [copyFiles(plan.installFiles), runStep(plan.install, { cacheId: o.cacheId, caches: pip })]
      : []),
    ...(plan.installFiles.includes('.') ? [] : ['COPY . .']),
    ...(plan.build ? [runStep(plan.build)] : []),
    plan.preStart
      ? `CMD ["sh", "-c", ${JSON.stringify(`${plan.preStart} && exec ${plan.start}`)}]`
      : startCmd(plan.start),
    '',
  ].join('\n');
}
