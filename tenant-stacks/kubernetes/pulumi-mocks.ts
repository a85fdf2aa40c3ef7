import * as pulumi from '@pulumi/pulumi';

/** A resource as the program registered it with the (mocked) engine. */
export type Registered = {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  /** "<provider urn>::<provider id>", or "" when the engine would pick the default provider. */
  provider: string;
};

/** Provider ids the mock engine hands out, so a test can tell which provider a resource names. */
export const MOCK_PROVIDER_ID = 'mock-provider-id';

/**
 * Runs a program against Pulumi's mock engine (pulumi.runtime.setMocks) and returns what it
 * registered and its outputs. Objects come back as the API server would echo them, with a
 * generated name for auto-named ones (as the Kubernetes provider makes).
 */
export async function runWithMocks(
  program: pulumi.automation.PulumiFn,
  /** Properties the engine would compute for a resource (e.g. a server's addresses), merged into its state. */
  computed: (type: string, name: string) => Record<string, unknown> = () => ({}),
): Promise<{ resources: Registered[]; outputs: Record<string, unknown> }> {
  const resources: Registered[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        resources.push({
          type: args.type,
          name: args.name,
          inputs: args.inputs,
          provider: args.provider ?? '',
        });
        if (args.type.startsWith('pulumi:providers:')) return { id: MOCK_PROVIDER_ID, state: args.inputs };
        const metadata = (args.inputs.metadata ?? {}) as Record<string, unknown>;
        const name = metadata.name ?? `${args.name}-0a1b2c3d`;
        return {
          id: String(name),
          state: { ...args.inputs, ...computed(args.type, args.name), metadata: { ...metadata, name } },
        };
      },
      call: (args) => args.inputs,
    },
    'deploy-mcp-test',
    'test',
    false,
  );
  const outputs = (await pulumi.runtime.runInPulumiStack(program)) ?? {};
  // Every registration the program started, also of resources its outputs do not depend on.
  await pulumi.runtime.disconnect();
  return { resources, outputs };
}

/** True when the engine received the value as a Pulumi secret (encrypted in the stack state). */
export function isSecret(value: unknown): value is { value: unknown } {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<string, unknown>)[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig
  );
}

/** The one resource of a type (and name, when given); fails the test when there is not exactly one. */
export function one(resources: Registered[], type: string, name?: string): Registered {
  const found = resources.filter((r) => r.type === type && (name === undefined || r.name === name));
  if (found.length !== 1) throw new Error(`expected one ${type} ${name ?? ''}, found ${found.length}`);
  return found[0] as Registered;
}
