/**
 * What a child process of ours may inherit from our own environment: finding programs, a home
 * directory, the locale, the time zone and the temp dir. Everything else it needs is given
 * explicitly by the code that starts it; the server's own settings (`DEPLOY_MCP_*`, the master
 * key above all) never are.
 */
const INHERITED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'] as const;

/** The explicit environment of a child process: the inherited basics plus `own`. */
export function childEnv(own: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of INHERITED) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  for (const [name, value] of Object.entries(own)) if (value !== undefined) env[name] = value;
  return env;
}

/** The prefix of the server's settings (core/config.ts). */
export const SETTINGS_PREFIX = 'DEPLOY_MCP_';

/**
 * The server's settings: those cli/settings-preload.mjs took out of the environment before
 * any child process started (bin/deploy-mcp loads it first), plus any still in `env` (when
 * cli/main.ts runs without the preload).
 */
export function serverSettings(env: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  const handedOver = (globalThis as Record<symbol, unknown>)[Symbol.for('deploy-mcp.settings')] as
    | Record<string, string>
    | undefined;
  const settings: Record<string, string | undefined> = { ...handedOver };
  for (const [name, value] of Object.entries(env))
    if (name.startsWith(SETTINGS_PREFIX)) settings[name] = value;
  return settings;
}

/**
 * Removes the server's settings from `env` once the config is parsed. Some children cannot be
 * given an explicit environment: the Pulumi Automation API runs the CLI with execa, which
 * always merges our whole environment into the one it is given, and the CLI passes it on to
 * every plugin and dynamic provider it starts.
 */
export function dropServerSettings(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of Object.keys(env)) if (name.startsWith(SETTINGS_PREFIX)) delete env[name];
}
