// The MCP conformance suite's server scenarios against our `/mcp`:
//   bin/with-tools tsx test/auth/conformance-server.ts <conformance dist/index.js> [--suite active|all]
// Install the suite outside the repo first (it is not a dependency; it needs Node ≥ 22, which
// bin/with-tools provides):
//   npm install --prefix /tmp/conformance @modelcontextprotocol/conformance@0.2.0-alpha.12
// The suite cannot send a bearer header, so it talks to a small loopback proxy that adds
// `Authorization: Bearer <an API key>` and forwards everything else unchanged: Host and Origin
// stay what the suite sent (a Host-rewriting proxy would make `dns-rebinding-protection`
// meaningless). Prints the suite's own output, then one line per scenario. Not part of CI.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startMcpTestServer } from '../support/mcp.ts';
import { scratchDir } from '../support/scratch.ts';

const cli = process.argv[2];
if (!cli)
  throw new Error('usage: tsx test/auth/conformance-server.ts <conformance dist/index.js> [--suite S]');
const suiteAt = process.argv.indexOf('--suite');
const suite = suiteAt > 0 ? (process.argv[suiteAt + 1] ?? 'active') : 'active';
/** The whole run is bounded: the suite's own timeout is per scenario. */
const RUN_LIMIT_MS = 15 * 60_000;

let key = '';
let upstream: URL | undefined;

/** Forwards to the test server, adding the bearer header; streams both ways (SSE included). */
const proxy = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: `Bearer ${key}` };
  const out = http.request(
    { host: upstream?.hostname, port: upstream?.port, method: req.method, path: req.url, headers },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  out.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`proxy: ${e.message}`);
  });
  req.pipe(out);
});
await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const proxyOrigin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
const proxyUrl = `${proxyOrigin}/mcp`;
// The proxy's origin is the one the suite's requests carry: allowed, as an operator allows the
// origin of a reverse proxy in front of the server (DEPLOY_MCP_ALLOWED_ORIGINS).
const server = await startMcpTestServer({ allowedOrigins: [proxyOrigin] });
({ key } = await server.newUser('conformance@example.com'));
upstream = new URL(server.url);

const results = scratchDir('conformance-results');
try {
  const baseline = path.join(import.meta.dirname, 'conformance-expected-failures.yaml');
  const args = [cli, 'server', '--url', proxyUrl, '--suite', suite, '-o', results.dir];
  // The baseline fits the active suite; other suites just report.
  if (suite === 'active') args.push('--expected-failures', baseline);
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    process.stdout.write(chunk);
  });
  const limit = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearTimeout(limit);
  process.exitCode = code ?? 1;
  const lines = [...out.matchAll(/^([✓✗]) (\S+): (\d+) passed, (\d+) failed$/gm)];
  console.log(`\n== conformance server --suite ${suite}: exit ${code}, ${lines.length} scenarios`);
  for (const [, mark, name, passed, failed] of lines) {
    console.log(`${mark === '✓' ? 'pass' : 'FAIL'}  ${name}  (${passed} passed, ${failed} failed)`);
    for (const check of failedChecks(results.dir, name ?? '')) console.log(`      ${check}`);
  }
} finally {
  results.cleanup();
  proxy.closeAllConnections();
  await new Promise((resolve) => proxy.close(resolve));
  await server.close();
}

/** The failed checks of a scenario, from the suite's `<dir>/server-<scenario>-<time>/checks.json`. */
function failedChecks(dir: string, scenario: string): string[] {
  const runDir = fs
    .readdirSync(dir)
    .find((d) => [scenario, `server-${scenario}`].includes(d.replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '')));
  if (!runDir || !fs.existsSync(`${dir}/${runDir}/checks.json`)) return [];
  const checks = JSON.parse(fs.readFileSync(`${dir}/${runDir}/checks.json`, 'utf8')) as {
    id?: string;
    status: string;
    errorMessage?: string;
    description?: string;
  }[];
  return checks
    .filter((c) => c.status !== 'SUCCESS')
    .map(
      (c) =>
        `${c.status} ${c.id ?? ''}: ${(c.errorMessage || c.description || '').replace(/\s+/g, ' ').slice(0, 300)}`,
    );
}
