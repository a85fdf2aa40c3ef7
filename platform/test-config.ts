import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import type { PlatformConfig } from './config.ts';

/** A complete configuration for tests, secrets as Pulumi secrets (as readPlatformConfig makes them). */
export function testConfig(overrides: Partial<PlatformConfig> = {}): PlatformConfig {
  return {
    hcloudToken: pulumi.secret('hcloud-token'),
    cloudflareToken: pulumi.secret('cloudflare-token'),
    k3sToken: pulumi.secret('k3s-token'),
    sshPrivateKey: pulumi.secret('-----BEGIN OPENSSH PRIVATE KEY-----'),
    sshKeys: ['sre'],
    adminCidr: '203.0.113.0/24',
    location: 'fsn1',
    networkZone: 'eu-central',
    image: 'debian-12',
    vswitchId: 4242,
    pools: {
      ctrl: { count: 1, serverType: 'cx32' },
      ops: { count: 1, serverType: 'cx42' },
      build: { count: 2, serverType: 'cpx51' },
      run: { count: 3, serverType: 'cx42' },
    },
    cloudflareAccountId: 'acct',
    cloudflareZoneId: 'zone',
    domain: 'deploy.example.com',
    appsDomain: 'apps.example.com',
    acmeEmail: 'sre@example.com',
    k3sVersion: 'v1.34.1+k3s1',
    images: {
      deployer: 'registry.example.com/deploy-mcp:1.0.0',
      traefik: 'traefik:v3.5',
      registry: 'registry:2.8.3',
      buildkit: 'moby/buildkit:v0.25.1',
    },
    keepImagesPerService: 5,
    certManagerCrds: fileURLToPath(new URL('./fixtures/cert-manager-crds', import.meta.url)),
    ...overrides,
  };
}
