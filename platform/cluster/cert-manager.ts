import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import {
  CERT_MANAGER_NAMESPACE,
  type CertManagerInstallArgs,
  installCertManager,
} from './cert-manager-install.ts';
import { PRODUCT_TLS_SECRET, productHosts } from './deployer-routes.ts';
import { INGRESS_NAMESPACE, SYSTEM_NAMESPACE, WILDCARD_SECRET } from './placement.ts';

/** The ClusterIssuer every platform certificate names (production: Let's Encrypt, DNS-01 through Cloudflare). */
export const CLUSTER_ISSUER = 'letsencrypt';

export type CertManagerArgs = {
  appsDomain: string;
  acmeEmail: string;
  cloudflareToken: pulumi.Input<string>;
  /** cert-manager itself (cert-manager-install.ts): the CRDs' directory, images, one node. */
  install: CertManagerInstallArgs;
  /**
   * The ClusterIssuer's spec. Unset (production): Let's Encrypt, ACME DNS-01 through Cloudflare,
   * the token in a Secret. A test gives an issuer it can reach (the one-node test: a CA issuer).
   */
  issuer?: Record<string, unknown>;
  /** The product's own names under it (api., mcp., git.) get a certificate too, for their Ingress. */
  domain?: string;
};

/**
 * cert-manager (installed here, cert-manager-install.ts), its ClusterIssuer, and the wildcard
 * certificate of the apps domain into the Secret Traefik serves by default.
 */
export function certManager(
  args: CertManagerArgs,
  opts: pulumi.CustomResourceOptions,
): k8s.apiextensions.CustomResource {
  const after = { ...opts, dependsOn: installCertManager(args.install, opts) };
  const issuer = new k8s.apiextensions.CustomResource(
    'letsencrypt',
    {
      apiVersion: 'cert-manager.io/v1',
      kind: 'ClusterIssuer',
      metadata: { name: CLUSTER_ISSUER },
      spec: args.issuer ?? letsEncrypt(args, after),
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

/** Let's Encrypt's production directory, DNS-01 through Cloudflare with the token in a Secret. */
function letsEncrypt(args: CertManagerArgs, opts: pulumi.CustomResourceOptions) {
  const token = new k8s.core.v1.Secret(
    'cloudflare-api-token',
    {
      metadata: { name: 'cloudflare-api-token', namespace: CERT_MANAGER_NAMESPACE },
      stringData: { 'api-token': pulumi.secret(args.cloudflareToken) },
    },
    opts,
  );
  return {
    acme: {
      server: 'https://acme-v02.api.letsencrypt.org/directory',
      email: args.acmeEmail,
      privateKeySecretRef: { name: 'letsencrypt-account' },
      solvers: [
        { dns01: { cloudflare: { apiTokenSecretRef: { name: token.metadata.name, key: 'api-token' } } } },
      ],
    },
  };
}
