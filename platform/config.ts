import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import type { CertManagerImages } from './cluster/cert-manager-install.ts';

/** The node pools; each is a set of identical Hetzner Cloud servers. */
export const POOLS = ['ctrl', 'ops', 'build', 'run'] as const;
export type PoolName = (typeof POOLS)[number];

export type PoolConfig = {
  /** Servers in the pool (ctrl: 1 or 3, an odd number for etcd). */
  count: number;
  /** Hetzner server type, e.g. cx32. */
  serverType: string;
};

/** What the platform stack is configured with (`Pulumi.<stack>.yaml`, namespace `platform:`). */
export type PlatformConfig = {
  /** Hetzner Cloud API token (a Pulumi secret). */
  hcloudToken: pulumi.Input<string>;
  /** Cloudflare API token: DNS edit + load balancers (a Pulumi secret; cert-manager's DNS-01 uses it too). */
  cloudflareToken: pulumi.Input<string>;
  /** The k3s join token (a Pulumi secret). */
  k3sToken: pulumi.Input<string>;
  /** Private key of the SSH key the servers are created with; reads the kubeconfig off ctrl (a Pulumi secret). */
  sshPrivateKey: pulumi.Input<string>;
  /** Names of Hetzner SSH keys put on every server. */
  sshKeys: string[];
  /** Where SREs come from: SSH and the Kubernetes API are open to it (and to nothing public else). */
  adminCidr: string;
  location: string;
  networkZone: string;
  image: string;
  /** Robot vSwitch id for dedicated servers on the private network; no vSwitch subnet without it. */
  vswitchId: number | undefined;
  /**
   * Public addresses (IPv4 and IPv6) of the dedicated (Robot) servers that join the cluster over
   * the vSwitch: the program does not make them, so it learns their addresses here. Build steps
   * may not reach them, as every cloud server's (cluster/buildkit.ts).
   */
  dedicatedAddresses?: string[];
  pools: Record<PoolName, PoolConfig>;
  cloudflareAccountId: string;
  cloudflareZoneId: string;
  /** The product's own names live under it: api.<domain>, mcp.<domain>, git.<domain>. */
  domain: string;
  /** Apps are served at https://<service>.<appsDomain>. */
  appsDomain: string;
  /** ACME account e-mail for the wildcard certificate. */
  acmeEmail: string;
  /** k3s release installed by the Ansible k3s roles, e.g. v1.34.1+k3s1. */
  k3sVersion: string;
  images: {
    deployer: string;
    traefik: string;
    registry: string;
    buildkit: string;
  };
  /** Registry clean-up keeps this many images per service (plus those releases still reference). */
  keepImagesPerService: number;
  /**
   * Directory of cert-manager's CRDs: the pinned module's `deploy/crds`, which
   * `npm run setup:kubernetes` copies to `.tools/cert-manager/crds` (the default).
   */
  certManagerCrds?: string;
  /** cert-manager's images; default upstream's of the pinned release (quay.io/jetstack). */
  certManagerImages?: CertManagerImages;
  /**
   * The ClusterIssuer's spec; default Let's Encrypt, ACME DNS-01 through Cloudflare. Tests give an
   * issuer they can reach (the one-node test: a CA issuer of its own).
   */
  certManagerIssuer?: Record<string, unknown>;
  /**
   * false: no cert-manager at all (no CRDs, components, ClusterIssuer, Certificate or Cloudflare
   * token Secret); Traefik then serves its own default certificate. Default true.
   */
  certManager?: boolean;
  /**
   * false: no deployer-server/-worker Deployments and no clean-up CronJob (they run the deployer
   * image); the deployer's ServiceAccount, roles and admission policy stay, for a deployer
   * running outside the cluster. Default true.
   */
  deployer?: boolean;
  /** The cluster is one node that is this machine (the one-node test cluster); see SingleNodeConfig. */
  singleNode?: SingleNodeConfig;
};

/**
 * A one-node cluster on the machine itself (core/cluster: no kube-proxy, no CoreDNS, the API
 * server on loopback). Its one node carries every pool (`deploy-mcp.dev/pool=all`, no taints),
 * and Traefik, the registry and BuildKit run on the host network at fixed local addresses: pods
 * cannot reach Service ClusterIPs or names there, and the product, containerd and BuildKit must
 * reach the registry at one address.
 */
export type SingleNodeConfig = {
  /** The address Traefik, the registry and BuildKit listen on (127.0.0.1). */
  bindAddress: string;
  ports: {
    web: number;
    websecure: number;
    registry: number;
    buildkit: number;
    /** cert-manager's webhook (TLS, called by the API server at https://localhost:<port>) and its health; with cert-manager only. */
    certManagerWebhook?: number;
    certManagerWebhookHealthz?: number;
  };
  /** Where host-network pods reach the API server (the `kubernetes` Service's ClusterIP is not routed). */
  apiServer: { host: string; port: number };
  /** Host directory of the registry's and BuildKit's state (production: /var/lib/deploy-mcp). */
  stateDir: string;
};

/** What the in-cluster layer reads of the configuration (it runs on its own given a kubeconfig). */
export type ClusterLayerConfig = Pick<
  PlatformConfig,
  | 'pools'
  | 'appsDomain'
  | 'acmeEmail'
  | 'cloudflareToken'
  | 'images'
  | 'keepImagesPerService'
  | 'certManagerCrds'
  | 'certManagerImages'
  | 'certManagerIssuer'
  | 'certManager'
  | 'deployer'
  | 'singleNode'
  | 'dedicatedAddresses'
> &
  /** The product's own names (api., mcp., git.) are routed to the deployer-server under it; unset on one node. */
  Partial<Pick<PlatformConfig, 'domain'>>;

/** Where `npm run setup:kubernetes` puts cert-manager's CRDs, in this checkout. */
const DEFAULT_CERT_MANAGER_CRDS = fileURLToPath(new URL('../.tools/cert-manager/crds', import.meta.url));

const DEFAULT_POOLS: Record<PoolName, PoolConfig> = {
  ctrl: { count: 1, serverType: 'cx32' },
  ops: { count: 1, serverType: 'cx42' },
  build: { count: 1, serverType: 'cpx51' },
  run: { count: 2, serverType: 'cx42' },
};

/** Reads the stack's configuration (inside a Pulumi run); secrets stay secrets. */
export function readPlatformConfig(cfg: pulumi.Config = new pulumi.Config('platform')): PlatformConfig {
  const pools = cfg.getObject<Partial<Record<PoolName, Partial<PoolConfig>>>>('pools') ?? {};
  return {
    hcloudToken: cfg.requireSecret('hcloudToken'),
    cloudflareToken: cfg.requireSecret('cloudflareToken'),
    k3sToken: cfg.requireSecret('k3sToken'),
    sshPrivateKey: cfg.requireSecret('sshPrivateKey'),
    sshKeys: cfg.requireObject<string[]>('sshKeys'),
    adminCidr: cfg.require('adminCidr'),
    location: cfg.get('location') ?? 'fsn1',
    networkZone: cfg.get('networkZone') ?? 'eu-central',
    image: cfg.get('image') ?? 'debian-12',
    vswitchId: cfg.getNumber('vswitchId'),
    dedicatedAddresses: cfg.getObject<string[]>('dedicatedAddresses') ?? [],
    pools: Object.fromEntries(
      POOLS.map((pool) => [pool, { ...DEFAULT_POOLS[pool], ...pools[pool] }]),
    ) as Record<PoolName, PoolConfig>,
    cloudflareAccountId: cfg.require('cloudflareAccountId'),
    cloudflareZoneId: cfg.require('cloudflareZoneId'),
    domain: cfg.require('domain'),
    appsDomain: cfg.require('appsDomain'),
    acmeEmail: cfg.require('acmeEmail'),
    k3sVersion: cfg.get('k3sVersion') ?? 'v1.34.1+k3s1',
    images: {
      deployer: cfg.require('deployerImage'),
      traefik: cfg.get('traefikImage') ?? 'docker.io/library/traefik:v3.5',
      registry: cfg.get('registryImage') ?? 'docker.io/library/registry:2.8.3',
      buildkit: cfg.get('buildkitImage') ?? 'docker.io/moby/buildkit:v0.25.1',
    },
    keepImagesPerService: cfg.getNumber('keepImagesPerService', { min: 1 }) ?? 5,
    certManagerCrds: cfg.get('certManagerCrds') ?? DEFAULT_CERT_MANAGER_CRDS,
    certManagerImages: cfg.getObject<CertManagerImages>('certManagerImages'),
    certManagerIssuer: cfg.getObject<Record<string, unknown>>('certManagerIssuer'),
    certManager: cfg.getBoolean('certManager') ?? true,
    deployer: cfg.getBoolean('deployer') ?? true,
  };
}
