import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { PRODUCT_TLS_SECRET, productHosts } from './deployer-routes.ts';
import { INGRESS_NAMESPACE, SYSTEM_NAMESPACE, WILDCARD_SECRET } from './placement.ts';

/** The ClusterIssuer every platform certificate names (Let's Encrypt, DNS-01 through Cloudflare). */
export const CLUSTER_ISSUER = 'letsencrypt';

export type CertManagerArgs = {
  appsDomain: string;
  acmeEmail: string;
  cloudflareToken: pulumi.Input<string>;
  /** A vendored cert-manager release manifest; unset: cert-manager is installed already. */
  manifest: string | undefined;
  /** The product's own names under it (api., mcp., git.) get a certificate too, for their Ingress. */
  domain?: string;
};

/**
 * The wildcard certificate of the apps domain from Let's Encrypt by DNS-01 through Cloudflare,
 * into the Secret Traefik serves by default.
 */
export function certManager(
  args: CertManagerArgs,
  opts: pulumi.CustomResourceOptions,
): k8s.apiextensions.CustomResource {
  const install = args.manifest
    ? [new k8s.yaml.v2.ConfigFile('cert-manager', { file: args.manifest }, opts)]
    : [];
  const after = { ...opts, dependsOn: install };
  const token = new k8s.core.v1.Secret(
    'cloudflare-api-token',
    {
      metadata: { name: 'cloudflare-api-token', namespace: 'cert-manager' },
      stringData: { 'api-token': pulumi.secret(args.cloudflareToken) },
    },
    after,
  );
  const issuer = new k8s.apiextensions.CustomResource(
    'letsencrypt',
    {
      apiVersion: 'cert-manager.io/v1',
      kind: 'ClusterIssuer',
      metadata: { name: CLUSTER_ISSUER },
      spec: {
        acme: {
          server: 'https://acme-v02.api.letsencrypt.org/directory',
          email: args.acmeEmail,
          privateKeySecretRef: { name: 'letsencrypt-account' },
          solvers: [
            {
              dns01: { cloudflare: { apiTokenSecretRef: { name: token.metadata.name, key: 'api-token' } } },
            },
          ],
        },
      },
    },
    after,
  );
  if (args.domain)
    new k8s.apiextensions.CustomResource(
      'product-names',
      {
        apiVersion: 'cert-manager.io/v1',
        kind: 'Certificate',
        metadata: { name: 'product-names', namespace: SYSTEM_NAMESPACE },
        spec: {
          secretName: PRODUCT_TLS_SECRET,
          dnsNames: productHosts(args.domain),
          issuerRef: { kind: 'ClusterIssuer', name: issuer.metadata.name },
        },
      },
      after,
    );
  return new k8s.apiextensions.CustomResource(
    'apps-wildcard',
    {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: 'apps-wildcard', namespace: INGRESS_NAMESPACE },
      spec: {
        secretName: WILDCARD_SECRET,
        dnsNames: [`*.${args.appsDomain}`, args.appsDomain],
        issuerRef: { kind: 'ClusterIssuer', name: issuer.metadata.name },
      },
    },
    after,
  );
}
