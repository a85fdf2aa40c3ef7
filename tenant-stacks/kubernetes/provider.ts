import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';

/** The cluster a program declares in: always through this explicit provider, never the ambient one. */
export type KubernetesCluster = {
  /** The kubeconfig's contents (not a path); kept as a Pulumi secret in the stack state. */
  kubeconfig: string;
  /** The kubeconfig context to use (default: its current-context). */
  context?: string | undefined;
};

/**
 * The provider every resource of our programs names. Server-side apply, so a field another
 * manager (an operator, `kubectl edit`) set is a conflict we see rather than something we
 * silently overwrite or drop. Secrets are replaced, not edited, when their data changes (the
 * service program relies on it; stated here so no PULUMI_K8S_* variable of the process changes it).
 */
export function clusterProvider(cluster: KubernetesCluster): k8s.Provider {
  return new k8s.Provider('cluster', {
    kubeconfig: pulumi.secret(cluster.kubeconfig),
    ...(cluster.context ? { context: cluster.context } : {}),
    enableServerSideApply: true,
    enableSecretMutable: false,
  });
}
