// The MCP server under benchmark, in its own process: creates `users` users (each with an API
// key and `services` services), prints {url, dbUrl, keys} as one JSON line, and serves until
// its stdin closes.
import { startMcpTestServer } from '../test/support/mcp.ts';

const [users = 50, services = 10] = process.argv.slice(2).map(Number);
const srv = await startMcpTestServer();
const keys: string[] = [];
for (let i = 0; i < users; i++) {
  const user = await srv.newUser(`bench${i}@example.com`);
  keys.push(user.key);
  const project = await srv.db.prisma.project.findFirstOrThrow({ where: { userId: user.userId } });
  for (let j = 0; j < services; j++) {
    await srv.db.prisma.service.create({
      data: {
        userId: user.userId,
        projectId: project.id,
        name: `svc-${j}`,
        liveKey: `${project.id}/svc-${j}`,
        stackName: `bench-${i}-${j}`,
        repoUrl: 'app',
      },
    });
  }
}
process.stdout.write(`${JSON.stringify({ url: srv.url, dbUrl: srv.dbUrl, keys, pid: process.pid })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void srv.close().then(() => process.exit(0));
});
