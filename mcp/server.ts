import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { SecretBox } from '../core/secrets.ts';
import type { ToolContext } from './tool-kit.ts';
import { registerAccountTools } from './tools/account.ts';
import { registerRepoTools } from './tools/repos.ts';
import { registerResourceTools } from './tools/resources.ts';
import { registerServiceTools } from './tools/services.ts';

export const SERVER_INFO = { name: 'deploy-mcp', version: '0.1.0' };

const INSTRUCTIONS =
  'Deploy MCP takes a git repo to a live URL. Typical flow: whoami → create_repo → git push → ' +
  'create_service → get_service until status is "active" (or "failed", with the reason and logs).';

/** An MCP server bound to one verified caller; every tool acts only on that caller's data. */
export function createServer(ctx: ToolContext, deps: { secrets: SecretBox }): McpServer {
  const server = new McpServer(SERVER_INFO, { instructions: INSTRUCTIONS, capabilities: { logging: {} } });
  registerAccountTools(server, ctx);
  registerServiceTools(server, ctx, deps);
  registerResourceTools(server, ctx, deps);
  registerRepoTools(server, ctx);
  return server;
}
