import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type McpTestServer, startMcpTestServer } from '../support/mcp.ts';

// Responses are plain JSON unless the client asked for progress notifications, which need an
// SSE stream (tools that wait, like create_service, report progress on it).
describe('response framing', () => {
  let srv: McpTestServer;
  let key: string;
  beforeAll(async () => {
    srv = await startMcpTestServer();
    key = (await srv.newUser('stream@example.com')).key;
  });
  afterAll(() => srv.close());

  async function callWhoami(meta?: Record<string, unknown>) {
    const res = await fetch(srv.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'whoami', arguments: {}, ...(meta ? { _meta: meta } : {}) },
      }),
    });
    return { type: res.headers.get('content-type') ?? '', body: await res.text() };
  }

  it('answers a plain call with a JSON body', async () => {
    const { type, body } = await callWhoami();
    expect(type).toMatch(/^application\/json/);
    expect(JSON.parse(body).result.structuredContent.email).toBe('stream@example.com');
  });

  it('streams SSE when the call carries a progressToken', async () => {
    const { type, body } = await callWhoami({ progressToken: 'p1' });
    expect(type).toMatch(/^text\/event-stream/);
    expect(body).toMatch(/^data: .*stream@example\.com/m);
  });
});
