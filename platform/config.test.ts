import * as pulumi from '@pulumi/pulumi';
import { afterEach, describe, expect, it } from 'vitest';
import { isSecret, one, runWithMocks } from '../tenant-stacks/kubernetes/pulumi-mocks.ts';
import { type PlatformConfig, readPlatformConfig } from './config.ts';
import { platformProgram } from './program.ts';

const stackConfig = {
  'platform:hcloudToken': 'hc-secret',
  'platform:cloudflareToken': 'cf-secret',
  'platform:k3sToken': 'k3s-secret',
  'platform:sshPrivateKey': 'ssh-secret',
  'platform:sshKeys': '["sre"]',
  'platform:adminCidr': '198.51.100.7/32',
  'platform:pools': '{"run":{"count":4}}',
  'platform:cloudflareAccountId': 'acct',
  'platform:cloudflareZoneId': 'zone',
  'platform:domain': 'deploy.example.com',
  'platform:appsDomain': 'apps.example.com',
  'platform:acmeEmail': 'sre@example.com',
  'platform:deployerImage': 'registry.example.com/deploy-mcp:2',
};
const secretKeys = [
  'platform:hcloudToken',
  'platform:cloudflareToken',
  'platform:k3sToken',
  'platform:sshPrivateKey',
];

describe('readPlatformConfig', () => {
  afterEach(() => pulumi.runtime.setAllConfig({}, []));

  it('reads the stack config with defaults, the tokens and the SSH key as secrets', async () => {
    pulumi.runtime.setAllConfig(stackConfig, secretKeys);
    let config: PlatformConfig | undefined;
    const { resources } = await runWithMocks(async () => {
      config = readPlatformConfig();
      return platformProgram(config)();
    });
    expect(config?.pools).toEqual({
      ctrl: { count: 1, serverType: 'cx32' },
      ops: { count: 1, serverType: 'cx42' },
      build: { count: 1, serverType: 'cpx51' },
      run: { count: 4, serverType: 'cx42' },
    });
    expect(config).toMatchObject({
      adminCidr: '198.51.100.7/32',
      vswitchId: undefined,
      dedicatedAddresses: [],
      keepImagesPerService: 5,
    });
    for (const key of ['hcloudToken', 'cloudflareToken', 'k3sToken', 'sshPrivateKey'] as const) {
      expect(await pulumi.isSecret(config?.[key] as pulumi.Output<string>)).toBe(true);
    }
    const hetzner = one(resources, 'pulumi:providers:hcloud');
    expect(isSecret(hetzner.inputs.token) && hetzner.inputs.token.value).toBe('hc-secret');
    expect(resources.filter((r) => r.type === 'hcloud:index/server:Server')).toHaveLength(7);
  });

  it('refuses a stack without the required settings, naming the missing key', () => {
    const { 'platform:adminCidr': _, ...without } = stackConfig;
    pulumi.runtime.setAllConfig(without, secretKeys);
    expect(() => readPlatformConfig()).toThrow(/adminCidr/);
  });
});
