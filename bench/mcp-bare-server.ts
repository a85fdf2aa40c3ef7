// The baseline of `npm run bench -- mcp`: a bare MCP server made with the same SDK in the same
// way as ours (stateless Streamable HTTP behind express.json, JSON responses), with one tool
// that returns a constant and no auth or database. Prints {url, pid} as one JSON line and
// serves until its stdin closes.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import express from 'express';
import { listen } from '../core/http.ts';

const app = express();
app.use(express.json({ limit: '1mb' }));
app.post('/mcp', async (req, res) => {
  // The SDK's stateless pattern: a server and a transport per request.
  const server = new McpServer({ name: 'bare', version: '1.0.0' });
  server.registerTool('constant', { description: 'Returns a constant.' }, async () => ({
    content: [{ type: 'text', text: 'ok' }],
  }));
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  res.on('close', () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});
const http = await listen(app, '127.0.0.1', 0);
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${http.port}/mcp`, pid: process.pid })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void http.close().then(() => process.exit(0));
});
