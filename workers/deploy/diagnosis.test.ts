import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { describeFailure } from '../build/buildkit.ts';
import {
  crashLine,
  deniedHint,
  devServerHint,
  explainBuildFailure,
  explainCrash,
  explainUnreachable,
  listeningSockets,
  loopbackBind,
  parseProcNetTcp,
} from './diagnosis.ts';

const HEADER =
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const row = (local: string, state = '0A') =>
  `   0: ${local} 00000000:0000 ${state} 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0`;

describe('parseProcNetTcp', () => {
  it('decodes IPv4, IPv6 and IPv4-mapped listeners, and skips other states', () => {
    const v4 = [HEADER, row('0100007F:0BB8'), row('00000000:1F90'), row('0100007F:0050', '01')].join('\n');
    expect(parseProcNetTcp(v4)).toEqual([
      { address: '127.0.0.1', port: 3000 },
      { address: '0.0.0.0', port: 8080 },
    ]);
    const v6 = [
      HEADER,
      row('00000000000000000000000001000000:0BB8'),
      row('00000000000000000000000000000000:1F90'),
      row('0000000000000000FFFF00000100007F:1389'),
    ].join('\n');
    expect(parseProcNetTcp(v6)).toEqual([
      { address: '::1', port: 3000 },
      { address: '::', port: 8080 },
      { address: '127.0.0.1', port: 5001 },
    ]);
  });

  it("reads a real process's loopback listener from /proc", async () => {
    const child = spawn(process.execPath, [
      '-e',
      'require("node:http").createServer(() => {}).listen(0, "127.0.0.1", function () { console.log(this.address().port) })',
    ]);
    try {
      const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
      const port = Number(chunk.toString().trim());
      let sockets = listeningSockets(child.pid ?? 0);
      for (let i = 0; i < 20 && !sockets.some((s) => s.port === port); i++) {
        await sleep(50);
        sockets = listeningSockets(child.pid ?? 0);
      }
      expect(sockets).toContainEqual({ address: '127.0.0.1', port });
      expect(loopbackBind(sockets, port)).toContain(`listens on 127.0.0.1:${port} only`);
    } finally {
      child.kill();
    }
  });
});

describe('loopbackBind', () => {
  it('names a PORT bound to loopback only, with the fix', () => {
    const reason = loopbackBind([{ address: '127.0.0.1', port: 3000 }], 3000);
    expect(reason).toMatch(/^the app listens on 127\.0\.0\.1:3000 only, .*bind 0\.0\.0\.0 \(/);
    expect(loopbackBind([{ address: '::1', port: 3000 }], 3000)).toContain('[::1]:3000 only');
  });

  it('says nothing when PORT is also reachable, or nothing listens', () => {
    const both = [
      { address: '127.0.0.1', port: 3000 },
      { address: '::', port: 3000 },
    ];
    expect(loopbackBind(both, 3000)).toBeUndefined();
    expect(loopbackBind([], 3000, true)).toBeUndefined();
  });

  it('names a loopback listener on another port only once the wait is over', () => {
    const vite = [{ address: '127.0.0.1', port: 5173 }];
    expect(loopbackBind(vite, 3000)).toBeUndefined();
    expect(loopbackBind(vite, 3000, true)).toContain('127.0.0.1:5173 only');
    expect(loopbackBind(vite, 3000, true)).toContain('on PORT=3000');
    // An internal loopback port beside a public one is none of our business.
    expect(loopbackBind([...vite, { address: '0.0.0.0', port: 8080 }], 3000, true)).toBeUndefined();
  });
});

describe('devServerHint', () => {
  it('recognizes the common development servers from their logs', () => {
    const cra = ['> web@0.1.0 start', '> react-scripts start', 'Starting the development server...'];
    expect(devServerHint(cra)).toMatch(/Create React App.*react-scripts build/);
    const vite = [
      '> app@0.0.0 dev',
      '> vite',
      '',
      '  VITE v6.3.5  ready in 412 ms',
      '  ➜  Local:   http://localhost:5173/',
    ];
    expect(devServerHint(vite)).toMatch(/Vite's development server.*vite preview --host 0\.0\.0\.0/);
    expect(devServerHint(['> next dev', '   ▲ Next.js 15.3.0'])).toMatch(/next build.*next start/);
    expect(devServerHint([], 'nuxt dev')).toMatch(/Nuxt/);
    // The command a generated image runs.
    expect(devServerHint([], 'sh -c exec npx vite')).toMatch(/Vite/);
    expect(devServerHint([], 'sh -c exec node server.js')).toBeUndefined();
  });

  it('stays quiet for production servers', () => {
    expect(devServerHint(['> app@1.0.0 start', '> node server.js', 'listening on 3000'])).toBeUndefined();
    expect(devServerHint(['> next start', '   ▲ Next.js 15.3.0'])).toBeUndefined();
    expect(devServerHint(['> vite build', 'vite v6.3.5 building for production...'])).toBeUndefined();
  });

  it('adds itself to the reason of an app that never answered', () => {
    const reason = explainUnreachable('the app did not answer HTTP on PORT=3000 within 60 s', {
      sockets: [{ address: '127.0.0.1', port: 5173 }],
      port: 3000,
      logTail: ['> vite', '  VITE v6.3.5  ready in 300 ms'],
    });
    expect(reason).toMatch(/^the app listens on 127\.0\.0\.1:5173 only.*; it runs Vite's development server/);
  });
});

const step = (n: number, lines: string[]) => lines.map((l, i) => `#${n} ${(10 + i / 10).toFixed(1)} ${l}`);

describe('explainBuildFailure', () => {
  it('names a native module that could neither download a binary nor compile', () => {
    const tail = [
      '#9 [stage-0 4/6] RUN npm ci',
      ...step(9, [
        'npm error code 1',
        'npm error path /app/node_modules/better-sqlite3',
        'npm error command failed',
        'npm error command sh -c prebuild-install || node-gyp rebuild --release',
        'npm error prebuild-install warn install request to https://example.invalid/better-sqlite3-v11.3.0-node-v137-linux-x64.tar.gz failed, reason: getaddrinfo ENOTFOUND example.invalid',
        'npm error gyp info it worked if it ends with ok',
        'npm error gyp ERR! find Python',
        'npm error gyp ERR! find Python You need to install the latest version of Python.',
        'npm error gyp ERR! stack Error: Could not find any Python installation to use',
        'npm error gyp ERR! not ok',
      ]),
      '#9 ERROR: process "/bin/sh -c npm ci" did not complete successfully: exit code: 1',
    ];
    const reason = describeFailure(tail);
    expect(reason).toMatch(/^build failed at \[stage-0 4\/6\] RUN npm ci: the native module better-sqlite3/);
    expect(reason).toContain('no prebuilt binary could be downloaded');
    expect(reason).toContain('there is no Python to compile it');
    expect(reason).toContain('apt-get install -y python3 make g++');
  });

  it('names an unreachable Docker Hub base image and the bases we offer', () => {
    const tail = [
      '#2 [internal] load metadata for docker.io/library/node:22-alpine',
      '#2 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/library/node/manifests/22-alpine": dial tcp: lookup registry-1.docker.io: no such host',
      'error: failed to solve: node:22-alpine: failed to resolve source metadata for docker.io/library/node:22-alpine: failed to do request: Head "https://registry-1.docker.io/v2/library/node/manifests/22-alpine": dial tcp: lookup registry-1.docker.io: no such host',
    ];
    const reason = explainBuildFailure(tail);
    expect(reason).toMatch(
      /^the Dockerfile's base image node:22-alpine cannot be pulled: Docker Hub \(docker\.io\)/,
    );
    expect(reason).toContain('FROM deploy-mcp/node');
    const ghcr = explainBuildFailure([
      'error: failed to solve: failed to resolve source metadata for ghcr.io/acme/base:1: dial tcp 1.2.3.4:443: i/o timeout',
    ]);
    expect(ghcr).toMatch(/base image ghcr\.io\/acme\/base:1 cannot be pulled: ghcr\.io is not reachable/);
  });

  it("turns pip's kilobytes of ignored versions into one sentence", () => {
    const ignored = `ERROR: Ignored the following versions that require a different python version: ${Array.from(
      { length: 300 },
      (_, i) => `5.${i} Requires-Python >=3.10`,
    ).join('; ')}; 6.0 Requires-Python >=3.12; 6.0.1 Requires-Python >=3.12`;
    const tail = [
      '#8 [stage-0 3/5] RUN pip install -r requirements.txt',
      ...step(8, [
        'Collecting Django==6.0.1',
        ignored,
        'ERROR: Could not find a version that satisfies the requirement Django==6.0.1 (from versions: 1.1.3, 1.1.4)',
        'ERROR: No matching distribution found for Django==6.0.1',
      ]),
      '#8 ERROR: process did not complete successfully: exit code: 1',
    ];
    expect(ignored.length).toBeGreaterThan(5000);
    const reason = describeFailure(tail);
    expect(reason.length).toBeLessThan(600);
    expect(reason).toContain('pip found no version of Django==6.0.1');
    expect(reason).toContain('6.0.1 needs Python >=3.12');
    expect(reason).toContain('3.11 or 3.13');
  });

  it('clips long error lines when no cause is known', () => {
    const tail = [
      '#7 [stage-0 3/5] RUN npm run build',
      ...step(7, [`Error: ${'x'.repeat(10_000)}`]),
      '#7 ERROR: process did not complete successfully: exit code: 1',
    ];
    const reason = describeFailure(tail);
    expect(explainBuildFailure(tail)).toBeUndefined();
    expect(reason.length).toBeLessThan(400);
  });

  it('names a Go version newer than the toolchain', () => {
    const reason = explainBuildFailure(
      step(6, ['go: go.mod requires go >= 1.99 (running go 1.27.4; GOTOOLCHAIN=local)']),
    );
    expect(reason).toBe(
      'go.mod asks for Go 1.99, but this builder has Go 1.27.4: lower the go line in go.mod to 1.27.4 or below',
    );
  });
});

describe('explainCrash: the log line that says why an app exited, quoted', () => {
  it("quotes yarn 4's own error (colours removed) and says what apps may write", () => {
    // The real tail of yarn-berry-hello when its HOME was not readable (bench/apps.ts).
    const yarn = [
      "\u001b[31m\u001b[1mInternal Error\u001b[22m\u001b[39m: EACCES: permission denied, open '/root/.yarnrc.yml'",
      "Error: EACCES: permission denied, open '/root/.yarnrc.yml'",
    ];
    expect(explainCrash('the process exited with code 1 (crash loop: restarted 1 time)', yarn)).toBe(
      'the process exited with code 1 (crash loop: restarted 1 time): ' +
        `"Error: EACCES: permission denied, open '/root/.yarnrc.yml'" (apps run as a non-root user (uid 10001) ` +
        'on a read-only root filesystem: they may write only to /tmp and HOME, and listen only on a PORT above ' +
        '1023 (a Dockerfile can give its USER more folders))',
    );
  });

  it("picks the error over stack frames, npm's epilogue and the runtime's banner", () => {
    const node = [
      '> app@1.0.0 start',
      '> node server.js',
      '',
      '/app/server.js:1',
      "const pg = require('pg');",
      '           ^',
      '',
      "Error: Cannot find module 'pg'",
      'Require stack:',
      '- /app/server.js',
      '    at Module._resolveFilename (node:internal/modules/cjs/loader:1225:15)',
      '    at Module._load (node:internal/modules/cjs/loader:1051:27)',
      '',
      'Node.js v24.21.0',
      'npm error code 1',
      'npm error path /app',
      'npm error command failed',
    ];
    expect(crashLine(node)).toBe("Error: Cannot find module 'pg'");
    const python = [
      'Traceback (most recent call last):',
      '  File "/app/app.py", line 1, in <module>',
      '    import flask',
      "ModuleNotFoundError: No module named 'flask'",
    ];
    expect(crashLine(python)).toBe("ModuleNotFoundError: No module named 'flask'");
    const go = [
      'panic: runtime error: index out of range [3] with length 0',
      '',
      'goroutine 1 [running]:',
      'main.main()',
      '\t/src/main.go:12 +0x1d',
    ];
    expect(crashLine(go)).toBe('panic: runtime error: index out of range [3] with length 0');
  });

  it("quotes the app's last words when no line names an error; leaves the reason alone for an empty log", () => {
    const npm = ['> app@1.0.0 start', '> node server.js', '', 'missing DATABASE_URL', 'npm error code 1'];
    expect(explainCrash('the process exited with code 1', npm)).toBe(
      'the process exited with code 1: "missing DATABASE_URL"',
    );
    expect(explainCrash('the process exited with code 3', [])).toBe('the process exited with code 3');
    expect(explainCrash('the process exited with code 3', ['', 'Node.js v24.21.0'])).toBe(
      'the process exited with code 3',
    );
    expect(crashLine([`x${'y'.repeat(500)}`])).toHaveLength(240);
  });

  it('deniedHint quotes the refused file for an app that did not exit, and is silent otherwise', () => {
    const log = ['listening', "cannot write cache: EROFS: read-only file system, open '/app/.cache/x'", 'ok'];
    expect(deniedHint(log)).toMatch(
      /^ \(denied: "cannot write cache: EROFS: read-only file system, open '\/app\/\.cache\/x'"; apps run as a non-root user/,
    );
    expect(deniedHint(['listening on 3000', 'Error: boom'])).toBe('');
  });
});
