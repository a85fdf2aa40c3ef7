import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js';
import type { GitHubRepos } from '../core/github/repos.ts';
import type { SecretBox } from '../core/secrets.ts';
import type { GitHosting } from '../git/hosting.ts';
import type { DeployStarter } from '../workers/deploy/start-deploy.ts';
import type { ResourceManager } from '../workers/resources/manager.ts';
import type { ToolContext } from './tool-kit.ts';
import { registerAccountTools } from './tools/account.ts';
import { registerRepoTools } from './tools/repos.ts';
import { registerResourceTools } from './tools/resources.ts';
import { registerServiceTools } from './tools/services.ts';

export const SERVER_INFO = { name: 'deploy-mcp', version: '0.1.0' };

const INSTRUCTIONS =
  'Deploy MCP takes a git repo to a live URL. Typical flow: whoami → create_repo → git push → ' +
  'create_service → get_service until status is "active" (or "failed", with the reason and logs).';

// Building an Ajv validator is the costliest part of constructing a server; one instance
// serves every request (it only validates elicitation schemas, which we do not use).
const jsonSchemaValidator = new AjvJsonSchemaValidator();

/**
 * An MCP server with every tool registered. It serves any caller: each request carries its
 * verified caller in authInfo, and every tool acts only on that caller's data.
 */
export type ServerDeps = {
  secrets: SecretBox;
  git: GitHosting;
  deploys?: DeployStarter;
  maxServicesPerUser?: number;
  /** GitHub repos through the App (host "github"). */
  github?: GitHubRepos;
  /** Creates and deletes resources (databases); absent: those tools say they are not available. */
  resources?: ResourceManager;
};

export function createServer(ctx: ToolContext, deps: ServerDeps): McpServer {
  const server = new McpServer(SERVER_INFO, {
    instructions: INSTRUCTIONS,
    capabilities: { logging: {} },
    jsonSchemaValidator,
  });
  registerAccountTools(server, ctx, deps.github);
  registerServiceTools(server, ctx, deps);
  registerResourceTools(server, ctx, deps);
  registerRepoTools(server, ctx, deps.git, deps.github);
  return server;
}

/**
 * Reuses servers across requests. The transport is stateless (one per request) and a server
 * holds one transport at a time, so each concurrent request takes its own server; building
 * one (registering every tool) costs more than the rest of a small request.
 */
export class ServerPool {
  private readonly idle: McpServer[] = [];

  private readonly build: () => McpServer;
  private readonly maxIdle: number;

  constructor(build: () => McpServer, maxIdle: number = 64) {
    this.build = build;
    this.maxIdle = maxIdle;
  }

  take(): McpServer {
    return this.idle.pop() ?? this.build();
  }

  /** Returns a server whose transport has closed. */
  give(server: McpServer): void {
    if (this.idle.length < this.maxIdle && !server.isConnected()) this.idle.push(server);
  }
}
