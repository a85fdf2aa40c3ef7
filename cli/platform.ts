import { accessSync, constants, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { PluginInfo } from '@pulumi/pulumi/automation/index.js';
import type { Config } from '../core/config.ts';
import { invalidInput } from '../core/errors.ts';

export const PLATFORM_USAGE = 'platform preview|up|destroy --stack <name> [--yes]';

/** Where Pulumi.yaml and the stacks' Pulumi.<stack>.yaml live: the same as `pulumi` there would use. */
const REPO_ROOT = path.resolve(import.meta.dirname, '..');
const PROJECT = 'deploy-mcp-platform';
const ACTIONS = ['preview', 'up', 'destroy'] as const;
export type PlatformAction = (typeof ACTIONS)[number];

/** The resource plugins the platform program needs, at the versions of the installed SDKs. */
export const PROVIDER_PACKAGES = ['hcloud', 'cloudflare', 'command', 'kubernetes'] as const;

export type PlatformArgs = { action: PlatformAction; stack: string; yes: boolean };

/** Parses `platform <action> --stack <name> [--yes]`; `up` and `destroy` need --yes (they change real servers). */
export function parsePlatformArgs(args: string[]): PlatformArgs {
  const [action, ...rest] = args;
  if (!ACTIONS.includes(action as PlatformAction)) {
    throw invalidInput(`usage: deploy-mcp ${PLATFORM_USAGE} (unknown action "${action ?? ''}")`);
  }
  const { values } = parseArgs({
    args: rest,
    options: { stack: { type: 'string' }, yes: { type: 'boolean', default: false } },
  });
  if (!values.stack) throw invalidInput(`usage: deploy-mcp ${PLATFORM_USAGE} (--stack is required)`);
  if (!/^[A-Za-z0-9_.-]+$/.test(values.stack)) {
    throw invalidInput(`invalid stack name "${values.stack}": letters, digits, "-", "_" and "." only`);
  }
  return { action: action as PlatformAction, stack: values.stack, yes: values.yes };
}

/** The plugin each provider SDK in node_modules asks for (name, version). */
export function requiredPlugins(): { name: string; version: string }[] {
  const require = createRequire(import.meta.url);
  return PROVIDER_PACKAGES.map((name) => {
    const pkg = JSON.parse(readFileSync(require.resolve(`@pulumi/${name}/package.json`), 'utf8')) as {
      version: string;
      pulumi?: { version?: string };
    };
    return { name, version: (pkg.pulumi?.version ?? pkg.version).replace(/^v/, '') };
  });
}

/** Names of the `pulumi-resource-<name>` executables on `searchPath`: Pulumi uses those (ambient plugins) too. */
export function ambientPlugins(names: readonly string[], searchPath: string): string[] {
  const dirs = searchPath.split(path.delimiter).filter(Boolean);
  return names.filter((name) =>
    dirs.some((dir) => {
      try {
        accessSync(path.join(dir, `pulumi-resource-${name}`), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    }),
  );
}

/** The required resource plugins neither installed (at their version) nor ambient. */
export function missingPlugins(
  installed: Pick<PluginInfo, 'name' | 'kind' | 'version'>[],
  required: { name: string; version: string }[],
  ambient: string[] = [],
): { name: string; version: string }[] {
  return required.filter(
    (r) =>
      !ambient.includes(r.name) &&
      !installed.some(
        (p) => p.kind === 'resource' && p.name === r.name && p.version?.replace(/^v/, '') === r.version,
      ),
  );
}

/** What to tell an SRE whose machine lacks provider plugins. */
export function missingPluginsMessage(missing: { name: string; version: string }[]): string {
  return [
    `deploy-mcp platform cannot run here: ${missing.length === 1 ? 'a provider plugin is' : 'provider plugins are'} missing:`,
    ...missing.map(
      (m) =>
        `  pulumi-resource-${m.name} v${m.version}  (pulumi plugin install resource ${m.name} ${m.version})`,
    ),
    'The program talks to Hetzner, Cloudflare, the nodes (over SSH) and the cluster only through these',
    'plugins, and Pulumi does not download them on its own here (automatic acquisition is off).',
    'Install them from a machine with access to GitHub releases; where the plugins come from a Go',
    "module proxy (as on the project's build machines) hcloud, cloudflare and command cannot be",
    'built: the proxy refuses their upstream modules (403). The program is tested with mocks',
    '(platform/*.test.ts) instead.',
  ].join('\n');
}

/** `deploy-mcp platform preview|up|destroy --stack <name>`: the platform program, inline, through the Automation API. */
export async function platform(config: Config, args: string[]): Promise<number> {
  const { action, stack: stackName, yes } = parsePlatformArgs(args);
  if (action !== 'preview' && !yes) {
    console.error(
      `platform ${action} changes real servers and DNS; run preview first, then again with --yes`,
    );
    return 2;
  }
  // Loaded here, not with the CLI: every other command (serve above all) runs without it.
  const { LocalWorkspace, PulumiCommand } = await import('@pulumi/pulumi/automation/index.js');
  const pulumiCommand = await PulumiCommand.get({ root: config.toolsDir });
  const options = {
    workDir: REPO_ROOT,
    pulumiCommand,
    envVars: { PULUMI_SKIP_UPDATE_CHECK: 'true', PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true' },
  };
  // Checked before any stack is selected: nothing touches the backend when the run cannot work.
  const missing = missingPlugins(
    await (await LocalWorkspace.create(options)).listPlugins(),
    requiredPlugins(),
    ambientPlugins(PROVIDER_PACKAGES, process.env.PATH ?? ''),
  );
  if (missing.length) {
    console.error(missingPluginsMessage(missing));
    return 1;
  }
  // Loaded here, not at start-up: the provider SDKs are only for this verb.
  const { readPlatformConfig } = await import('../platform/config.ts');
  const { platformProgram } = await import('../platform/program.ts');
  const program = async () => platformProgram(readPlatformConfig())();
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName, projectName: PROJECT, program },
    options,
  );
  const onOutput = (line: string) => process.stdout.write(line);
  if (action === 'preview') await stack.preview({ onOutput, diff: true });
  else if (action === 'up') await stack.up({ onOutput });
  else await stack.destroy({ onOutput });
  return 0;
}
