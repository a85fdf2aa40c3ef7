// Loaded first by bin/deploy-mcp (`node --import`), before anything else: a loader (tsx, when a
// script runs through it) may start a child process right away, inheriting the settings (the
// master key among them). They are moved out of the environment here, before any child
// exists, and cli/main.ts reads them from this hand-over (core/child-env.ts serverSettings).
const settings = {};
for (const [name, value] of Object.entries(process.env)) {
  if (!name.startsWith('DEPLOY_MCP_')) continue;
  settings[name] = value;
  delete process.env[name];
}
globalThis[Symbol.for('deploy-mcp.settings')] = settings;
