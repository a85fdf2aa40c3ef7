import fs from 'node:fs';

/**
 * Why an app or a build did not work, named with what to do: an app bound to loopback, a
 * development server, a native module without a prebuilt binary or a compiler, a base image from
 * a registry the builder cannot reach, a language version that is not offered. Each function
 * returns one sentence (or undefined when it has nothing to say); reasons stay short.
 */

/** A listening TCP socket: its local address (dotted IPv4 or IPv6 text) and port. */
export type ListeningSocket = { address: string; port: number };

/** Listening sockets of one /proc/<pid>/net/tcp or tcp6 table. */
export function parseProcNetTcp(text: string): ListeningSocket[] {
  const sockets: ListeningSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[3] !== '0A') continue; // LISTEN
    const [hexAddress, hexPort] = (cols[1] ?? '').split(':');
    const port = Number.parseInt(hexPort ?? '', 16);
    if (!hexAddress || !port) continue;
    sockets.push({ address: decodeAddress(hexAddress), port });
  }
  return sockets;
}

/** /proc's addresses are 32-bit words in host (little-endian) byte order. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255)
    return bytes.slice(12).join('.'); // IPv4-mapped
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

/** The listening sockets of a process's network namespace (a container's, seen from the host). */
export function listeningSockets(pid: number): ListeningSocket[] {
  const sockets: ListeningSocket[] = [];
  for (const table of ['tcp', 'tcp6']) {
    try {
      sockets.push(...parseProcNetTcp(fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8')));
    } catch {
      // no such table (no IPv6) or the process is gone
    }
  }
  return sockets;
}

/**
 * "listens on 127.0.0.1:3000 only": the app's port is bound to loopback and to no other address,
 * so neither the router nor the health check can reach it. With `anyPort`, a loopback listener
 * on another port counts too (used once the wait is over: nothing listens on PORT at all).
 */
export function loopbackBind(sockets: ListeningSocket[], port: number, anyPort = false): string | undefined {
  const reachable = sockets.some((s) => s.port === port && !isLoopback(s.address));
  if (reachable) return undefined;
  const onPort = sockets.filter((s) => s.port === port && isLoopback(s.address));
  const others = sockets.filter((s) => s.port !== port && isLoopback(s.address));
  const shown = onPort.length
    ? onPort
    : anyPort && !sockets.some((s) => !isLoopback(s.address))
      ? others
      : [];
  if (!shown.length) return undefined;
  const where = [
    ...new Set(shown.map((s) => `${s.address.includes(':') ? `[${s.address}]` : s.address}:${s.port}`)),
  ].join(', ');
  return (
    `the app listens on ${where} only, which is unreachable from outside its container: ` +
    `bind 0.0.0.0${onPort.length ? '' : ` on PORT=${port}`} (e.g. listen(PORT, "0.0.0.0"), ` +
    `Fastify's { host: "0.0.0.0" }, uvicorn/flask --host 0.0.0.0)`
  );
}

type DevServer = { name: string; pattern: RegExp; fix: string };

const DEV_SERVERS: DevServer[] = [
  {
    name: "Create React App's development server (react-scripts start)",
    pattern: /react-scripts start|Starting the development server/,
    fix: 'build it (react-scripts build) and serve build/ as static files: drop start_command and the build pack does so',
  },
  {
    name: "Vite's development server",
    pattern: /^>\s*vite(\s+(dev|serve)\b.*)?\s*$|VITE v\d+\.\d+\.\d+\s+ready in/m,
    fix: 'build it (vite build) and serve dist/ (drop start_command and the build pack does so), or run `vite preview --host 0.0.0.0 --port $PORT`',
  },
  {
    name: 'the Next.js development server (next dev)',
    pattern: /^>\s*next dev\b|next dev\b.*--turbo/m,
    fix: 'build with `next build` and start with `next start` (scripts.build and scripts.start)',
  },
  {
    name: 'the Nuxt development server (nuxt dev)',
    pattern: /^>\s*nuxt dev\b|^>\s*nuxi dev\b/m,
    fix: 'build with `nuxt build` and start with `node .output/server/index.mjs`',
  },
  {
    name: 'the Angular development server (ng serve)',
    pattern: /^>\s*ng serve\b/m,
    fix: 'build with `ng build` and serve dist/<project>/browser as static files',
  },
  {
    name: 'a webpack development server',
    pattern: /^>\s*(webpack serve|webpack-dev-server)\b|^>\s*vue-cli-service serve\b/m,
    fix: 'build the production bundle and serve it as static files',
  },
  {
    name: 'the Remix development server (remix dev)',
    pattern: /^>\s*remix (vite:)?dev\b/m,
    fix: 'build with `remix vite:build` and start with `remix-serve ./build/server/index.js`',
  },
];

/** "this is a development server …": when the log tail or the start command shows one. */
export function devServerHint(logTail: string[], startCommand = ''): string | undefined {
  // As npm echoes a script: "> vite" (a generated image runs `sh -c "exec <start>"`).
  const command = startCommand
    .replace(/^sh -c (exec )?/, '')
    .replace(/^npx (--yes |-y )?/, '')
    .trim();
  const text = `${logTail.join('\n')}\n> ${command}`;
  const found = DEV_SERVERS.find((d) => d.pattern.test(text));
  return found ? `it runs ${found.name}, which is not for production: ${found.fix}` : undefined;
}

/**
 * The reason for an app that started but cannot be reached, made more precise from its sockets
 * and log: a loopback bind first, then a development server. Returns `reason` unchanged when
 * neither applies.
 */
export function explainUnreachable(
  reason: string,
  o: { sockets: ListeningSocket[]; port: number; logTail: string[] },
): string {
  const loopback = loopbackBind(o.sockets, o.port, true);
  const dev = devServerHint(o.logTail);
  if (loopback) return dev ? `${loopback}; ${dev}` : loopback;
  return dev ? `${reason}; ${dev}` : reason;
}

/** At most this many characters of one quoted log line. */
const LINE_MAX = 240;

/** A log line short enough to quote. */
export function clip(line: string, max = LINE_MAX): string {
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** pip's list of every version it skipped: kilobytes long, and never the cause itself. */
export function isPipNoise(line: string): boolean {
  return /Ignored the following (yanked )?versions/.test(line);
}

/**
 * The cause of a failed build, named with what to do, from the build output (step lines as
 * BuildKit prints them: "#7 12.3 npm error …"). undefined: no known cause, the caller quotes
 * the step's own error lines.
 */
export function explainBuildFailure(tail: string[]): string | undefined {
  const lines = tail.map((l) => l.replace(/^#\d+ [\d.]+ /, '').trim());
  const text = lines.join('\n');
  return (
    unreachableRegistry(text) ?? nativeModule(lines, text) ?? pythonVersion(lines, text) ?? goVersion(text)
  );
}

/** The base images a user's Dockerfile can name instead of public ones. */
export const OFFERED_BASES =
  'deploy-mcp/node (Node.js 24 with npm), ' +
  'deploy-mcp/python (Python 3.11 with pip), deploy-mcp/go (Go) or deploy-mcp/runtime (Debian bookworm)';

function unreachableRegistry(text: string): string | undefined {
  const m =
    text.match(
      /failed to resolve source metadata for (?:docker-image:\/\/)?([^\s:]+(?::[\w.-]+)?(?:@\S+)?)/,
    ) ??
    text.match(/docker-image:\/\/([^\s"]+)[^\n]*(?:no such host|i\/o timeout|connection refused|dial tcp)/);
  if (!m?.[1]) return undefined;
  if (!/no such host|i\/o timeout|connection refused|dial tcp|network is unreachable|lookup /.test(text))
    return undefined;
  const image = m[1];
  const first = image.split('/')[0] ?? '';
  const registry = image.includes('/') && /[.:]/.test(first) ? first : 'docker.io';
  const shown = registry === 'docker.io' ? image.replace(/^docker\.io\/(library\/)?/, '') : image;
  return (
    `the Dockerfile's base image ${shown} cannot be pulled: ${registry === 'docker.io' ? 'Docker Hub (docker.io)' : registry} ` +
    `is not reachable from this builder. Use a base image we provide: FROM ${OFFERED_BASES}; ` +
    'or remove the Dockerfile and let the build pack build the app (an operator can also set DEPLOY_MCP_REGISTRY_MIRRORS)'
  );
}

function nativeModule(lines: string[], text: string): string | undefined {
  const gyp = /gyp (ERR|info)|node-gyp|prebuild-install|node-pre-gyp|cmake-js/.test(text);
  if (
    !gyp ||
    !/gyp ERR!|prebuild-install (warn|ERR)|node-pre-gyp (ERR|WARN)|npm error|ERR_PNPM|YN0009/.test(text)
  )
    return undefined;
  const pkg =
    text.match(/npm error path \S*node_modules\/((?:@[\w.-]+\/)?[\w.-]+)\s*$/m)?.[1] ??
    text.match(
      /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[\w.-]+\/)?[\w.-]+)(?::| install)/,
    )?.[1] ??
    text.match(/➤ YN0009: │ ((?:@[\w.-]+\/)?[\w.-]+)@/)?.[1] ??
    'a native module';
  const causes: string[] = [];
  if (
    /No prebuilt binaries found|prebuild-install (warn|ERR!?) install|Pre-built binaries not (found|installable)|Tried to download/.test(
      text,
    )
  )
    causes.push('no prebuilt binary could be downloaded for this Node.js version and platform');
  if (/find Python|Could not find any Python|python3?: not found|No Python/i.test(text))
    causes.push('there is no Python to compile it');
  else if (
    /(make|g\+\+|cc|gcc|c\+\+): not found|not found: make|No such file or directory.*(make|g\+\+)/.test(text)
  )
    causes.push('there is no C/C++ compiler (make, g++) to compile it');
  if (!causes.length) {
    const quoted = lines
      .filter((l) => /gyp ERR! (stack|find)|error:/.test(l))
      .slice(0, 2)
      .map((l) => clip(l));
    causes.push(quoted.length ? `compiling it failed (${quoted.join(' / ')})` : 'compiling it failed');
  }
  return (
    `the native module ${pkg} could not be installed: ${causes.join(', and ')}. Use a version of ${pkg} that ` +
    'ships prebuilt binaries for this Node.js version (or set the Node.js version it supports in engines.node or .nvmrc), ' +
    'or add a Dockerfile FROM deploy-mcp/node that first runs `apt-get update && apt-get install -y python3 make g++`'
  );
}

function pythonVersion(lines: string[], text: string): string | undefined {
  const missing = text.match(/No matching distribution found for (\S+)/)?.[1];
  const ignored = lines.find(isPipNoise);
  if (!missing || !ignored) return undefined;
  const name = missing.split(/[<>=!~[;]/)[0]?.toLowerCase() ?? missing;
  // "6.0 Requires-Python >=3.12; 6.0a1 Requires-Python >=3.12; …": the newest few.
  const needs = [...ignored.matchAll(/([\w.+-]+) Requires-Python ([^;]+)/g)]
    .map((m) => `${m[1]} needs Python ${m[2]?.trim()}`)
    .slice(-3);
  const running = text.match(/Python (3\.\d+)\.\d+/)?.[1];
  return (
    `pip found no version of ${missing} that installs on ${running ? `Python ${running}` : 'this Python'}` +
    `${needs.length ? ` (${needs.join('; ')})` : ''}: ask for a Python version we offer (3.11 or 3.13) in ` +
    `.python-version or requires-python, or pin an older ${name}`
  );
}

function goVersion(text: string): string | undefined {
  const m = text.match(/go\.mod requires go >= (\S+) \(running go (\S+?);/);
  return m
    ? `go.mod asks for Go ${m[1]}, but this builder has Go ${m[2]}: lower the go line in go.mod to ${m[2]} or below`
    : undefined;
}

/** Apps' containment, said when an app was denied a file or port. */
const CONTAINMENT =
  'apps run as a non-root user (uid 10001) on a read-only root filesystem: they may write only to /tmp ' +
  'and HOME, and listen only on a PORT above 1023 (a Dockerfile can give its USER more folders)';

/** A line saying the app was refused a file or a port by its containment. */
const DENIED = /\b(EACCES|EPERM|EROFS)\b|permission denied|read-only file system/i;

/** A line naming an error: an exception class, an errno, a panic, a module not found. */
const ERROR_LINE = /\b[A-Z]\w*(Error|Exception)\b|\bE[A-Z]{3,}\b|^panic: |Cannot find module|No module named/;
const ERROR_WORDS = /\b(error|fatal)\b|permission denied|read-only file system/i;

/** Terminal colour and style codes (ESC [ … m). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g');

/** Lines that never say why: stack frames, runtimes' banners, package managers' epilogues. */
function isNoise(line: string): boolean {
  return (
    line.trim() === '' ||
    /^\s+(at |File "|\S+\.go:\d+)/.test(line) ||
    /^Node\.js v\d/.test(line) ||
    /^\s*\^+\s*$/.test(line) ||
    /^(npm (error|ERR!|notice|warn)|> |➤ YN0000: )/.test(line) ||
    /^(Traceback \(most recent call last\)|goroutine \d+ \[)/.test(line)
  );
}

/**
 * The line of a stopped app's log that says why it stopped: the last line naming an error, else
 * the last line that is not a stack frame or a package manager's epilogue (terminal colours
 * removed). undefined for an empty log.
 */
export function crashLine(logTail: string[]): string | undefined {
  const lines = logTail.map((l) => l.replace(ANSI, '').trimEnd()).filter((l) => !isNoise(l));
  const line = lines.findLast((l) => ERROR_LINE.test(l) || ERROR_WORDS.test(l)) ?? lines.at(-1);
  return line === undefined ? undefined : clip(line.trim());
}

/**
 * The reason for an app that exited, with the log line that says why quoted
 * (`the process exited with code 1: "Error: EACCES: permission denied, open '…'"`), and, when
 * that line is a refused file or port, what apps may do. `reason` unchanged for an empty log.
 */
export function explainCrash(reason: string, logTail: string[]): string {
  const line = crashLine(logTail);
  if (!line) return reason;
  return `${reason}: "${line}"${DENIED.test(line) ? ` (${CONTAINMENT})` : ''}`;
}

/**
 * For an app that did not exit: when its log shows it refused a file or port, that line quoted
 * with what apps may do (" (denied: "…"; apps run as …)"); "" otherwise.
 */
export function deniedHint(logTail: string[]): string {
  const line = crashLine(logTail.filter((l) => DENIED.test(l)));
  return line ? ` (denied: "${line}"; ${CONTAINMENT})` : '';
}
