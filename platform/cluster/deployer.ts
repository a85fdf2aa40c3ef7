import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { BUILDKIT_ADDRESS } from './buildkit.ts';
import { INGRESS_CLASS, INGRESS_NAMESPACE, onPool, SYSTEM_NAMESPACE } from './placement.ts';

export type DeployerArgs = {
  image: string;
  appsDomain: string;
  registryHost: string;
  /** Kubeconfig the deployer-worker declares tenants' stacks with (private API address; a secret). */
  kubeconfig: pulumi.Input<string>;
};

/** The Secret the SRE makes with the rest of the product's settings (database, master key, Temporal). */
export const DEPLOYER_ENV_SECRET = 'deployer-env';
const KUBECONFIG_DIR = '/etc/deploy-mcp/kube';

/** Environment both roles share: the `kubernetes` runtime, configured from this program. */
export function runtimeEnv(args: DeployerArgs) {
  return [
    { name: 'DEPLOY_MCP_RUNTIME', value: 'kubernetes' },
    { name: 'DEPLOY_MCP_KUBECONFIG', value: `${KUBECONFIG_DIR}/config` },
    { name: 'DEPLOY_MCP_INGRESS_CLASS', value: INGRESS_CLASS },
    { name: 'DEPLOY_MCP_INGRESS_NAMESPACE', value: INGRESS_NAMESPACE },
    { name: 'DEPLOY_MCP_APPS_DOMAIN', value: args.appsDomain },
    { name: 'DEPLOY_MCP_REGISTRY', value: args.registryHost },
    { name: 'DEPLOY_MCP_BUILDKIT_ADDRESS', value: BUILDKIT_ADDRESS },
  ];
}

/** deployer-server (webhooks, /healthz) and deployer-worker (builds and stack updates) on the ops pool. */
export function deployer(args: DeployerArgs, opts: pulumi.CustomResourceOptions): k8s.apps.v1.Deployment[] {
  const kubeconfig = new k8s.core.v1.Secret(
    'deployer-kubeconfig',
    {
      metadata: { name: 'deployer-kubeconfig', namespace: SYSTEM_NAMESPACE },
      stringData: { config: pulumi.secret(args.kubeconfig) },
    },
    opts,
  );
  return (['deployer-server', 'deployer-worker'] as const).map((role) => {
    const labels = { app: role };
    return new k8s.apps.v1.Deployment(
      role,
      {
        metadata: { name: role, namespace: SYSTEM_NAMESPACE, labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              ...onPool('ops'),
              automountServiceAccountToken: false,
              containers: [
                {
                  name: role,
                  image: args.image,
                  args: ['serve', '--role', role],
                  env: runtimeEnv(args),
                  envFrom: [{ secretRef: { name: DEPLOYER_ENV_SECRET } }],
                  volumeMounts: [{ name: 'kubeconfig', mountPath: KUBECONFIG_DIR, readOnly: true }],
                  securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, runAsUser: 10001 },
                },
              ],
              volumes: [{ name: 'kubeconfig', secret: { secretName: kubeconfig.metadata.name } }],
            },
          },
        },
      },
      opts,
    );
  });
}
