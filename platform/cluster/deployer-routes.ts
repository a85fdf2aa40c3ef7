import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import { PRODUCT_NAMES } from '../pools.ts';
import { INGRESS_CLASS, SYSTEM_NAMESPACE } from './placement.ts';

/**
 * The deployer-server's ports off one node (core/config.ts defaults): MCP, git and sign-in on
 * `server`, webhooks on `deployer`. Fixed here, not read from the `deployer-env` Secret, so the
 * Service, the Ingress and the readiness probe agree with what the pod listens on.
 */
export const DEPLOYER_PORTS = { server: 8081, deployer: 8082 } as const;
/** The certificate of the product's own names (cert-manager.ts issues it), in the system namespace. */
export const PRODUCT_TLS_SECRET = 'product-names-tls';

/** Which of the product's names (cloud/cloudflare.ts's DNS records) goes to which port. */
const NAME_PORTS: Record<(typeof PRODUCT_NAMES)[number], keyof typeof DEPLOYER_PORTS> = {
  mcp: 'server', // MCP at /mcp, sign-in
  git: 'server', // the git server at /git
  api: 'deployer', // GitHub's webhooks
};

export function productHosts(domain: string): string[] {
  return PRODUCT_NAMES.map((name) => `${name}.${domain}`);
}

/** The settings that follow from the ports and names above (both roles: links they hand out). */
export function publicEnv(domain: string | undefined) {
  return [
    { name: 'DEPLOY_MCP_PORT', value: String(DEPLOYER_PORTS.server) },
    { name: 'DEPLOY_MCP_DEPLOYER_PORT', value: String(DEPLOYER_PORTS.deployer) },
    ...(domain ? [{ name: 'DEPLOY_MCP_PUBLIC_URL', value: `https://mcp.${domain}` }] : []),
  ];
}

/**
 * The product's names reach the deployer-server: a Service on its two ports and one Ingress of
 * class "traefik" with a rule per name (TLS from the product names' certificate when cert-manager
 * issues it; else Traefik's default certificate).
 */
export function deployerRoutes(
  args: { domain: string; tls: boolean; selector: Record<string, string> },
  opts: pulumi.CustomResourceOptions,
): k8s.networking.v1.Ingress {
  const service = new k8s.core.v1.Service(
    'deployer-server',
    {
      metadata: { name: 'deployer-server', namespace: SYSTEM_NAMESPACE },
      spec: {
        selector: args.selector,
        ports: Object.entries(DEPLOYER_PORTS).map(([name, port]) => ({
          name,
          port,
          targetPort: port,
          protocol: 'TCP',
        })),
      },
    },
    opts,
  );
  return new k8s.networking.v1.Ingress(
    'deployer-server',
    {
      metadata: { name: 'deployer-server', namespace: SYSTEM_NAMESPACE },
      spec: {
        ingressClassName: INGRESS_CLASS,
        ...(args.tls ? { tls: [{ hosts: productHosts(args.domain), secretName: PRODUCT_TLS_SECRET }] } : {}),
        rules: PRODUCT_NAMES.map((name) => ({
          host: `${name}.${args.domain}`,
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: {
                  service: {
                    name: service.metadata.name,
                    port: { number: DEPLOYER_PORTS[NAME_PORTS[name]] },
                  },
                },
              },
            ],
          },
        })),
      },
    },
    { ...opts, dependsOn: [service] },
  );
}
