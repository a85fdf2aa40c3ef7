// The MCP conformance suite's authorization-server scenarios against our authorization server:
//   bin/with-tools tsx test/auth/conformance.ts <path of the conformance CLI (dist/index.js)>
// Install the suite outside the repo first (it is not a dependency):
//   npm install --prefix /tmp/conformance @modelcontextprotocol/conformance@0.2.0-alpha.12
// The suite prints an authorization URL and waits for the callback; this script plays the user
// (signs in with a login code, allows on the consent page) over HTTP. Not part of CI.
import { spawn } from 'node:child_process';
import { freePort } from '../../core/daemons/probes.ts';
import { createLoginCode } from '../../mcp/auth/login-codes.ts';
import { startMcpTestServer } from '../support/mcp.ts';
import { consent, PageClient, registerClient, signIn } from '../support/oauth.ts';

const cli = process.argv[2];
if (!cli) throw new Error('usage: tsx test/auth/conformance.ts <conformance dist/index.js>');
const server = await startMcpTestServer();
try {
  // One run for both scenarios: the grant scenario reads the metadata scenario's result.
  for (const scenario of ['all']) {
    const port = await freePort();
    const client = await registerClient(server.origin, [`http://127.0.0.1:${port}/callback`], 'Conformance');
    const child = spawn(
      process.execPath,
      [
        cli,
        'authorization',
        '--url',
        server.origin,
        '--client-id',
        client.client_id,
        '--resource',
        server.url,
        '--port',
        String(port),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    let driven = false;
    child.stdout.on('data', async (chunk: Buffer) => {
      out += chunk.toString();
      process.stdout.write(chunk);
      const url = out.match(/Access the following URL[^\n]*\n(\S+)/)?.[1];
      if (!url || driven) return;
      driven = true;
      const browser = new PageClient(server.origin);
      const { code } = await createLoginCode(server.db.prisma, 'conformance@example.com');
      const path = url.slice(server.origin.length);
      await signIn(browser, code, path);
      const back = await consent(browser, path);
      // The callback is the suite's own server: no cookies of ours go there.
      await fetch(back.location ?? '', { redirect: 'manual' });
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    console.log(`== ${scenario}: exit ${code}`);
  }
} finally {
  await server.close();
}
