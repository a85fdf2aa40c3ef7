import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import type { SingleNodeConfig } from '../config.ts';
import { INGRESS_CLASS, INGRESS_NAMESPACE, onPool, WILDCARD_SECRET } from './placement.ts';

const labels = { app: 'traefik' };

/**
 * Traefik as a DaemonSet on the run nodes' host network (the Cloudflare pool's origins), serving
 * Ingresses of class "traefik" and the wildcard certificate as its default. Plain objects, no
 * Helm chart (charts cannot be downloaded on the machines this is tested on).
 */
export function traefik(
  image: string,
  opts: pulumi.CustomResourceOptions,
  single?: SingleNodeConfig,
): k8s.apps.v1.DaemonSet {
  // One node that is this machine: its own ports on the bind address, the API server where the
  // host network reaches it (client-go's in-cluster config reads these two variables).
  const web = single ? single.ports.web : 80;
  const websecure = single ? single.ports.websecure : 443;
  const bind = single ? single.bindAddress : '';
  const apiServerEnv = single
    ? [
        { name: 'KUBERNETES_SERVICE_HOST', value: single.apiServer.host },
        { name: 'KUBERNETES_SERVICE_PORT', value: String(single.apiServer.port) },
      ]
    : [];
  const sa = new k8s.core.v1.ServiceAccount(
    'traefik',
    { metadata: { name: 'traefik', namespace: INGRESS_NAMESPACE } },
    opts,
  );
  const role = new k8s.rbac.v1.ClusterRole(
    'traefik',
    {
      metadata: { name: 'traefik' },
      rules: [
        { apiGroups: [''], resources: ['services', 'secrets', 'nodes'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
        {
          apiGroups: ['networking.k8s.io'],
          resources: ['ingresses', 'ingressclasses'],
          verbs: ['get', 'list', 'watch'],
        },
        { apiGroups: ['networking.k8s.io'], resources: ['ingresses/status'], verbs: ['update'] },
      ],
    },
    opts,
  );
  new k8s.rbac.v1.ClusterRoleBinding(
    'traefik',
    {
      metadata: { name: 'traefik' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name },
      subjects: [{ kind: 'ServiceAccount', name: 'traefik', namespace: INGRESS_NAMESPACE }],
    },
    opts,
  );
  new k8s.networking.v1.IngressClass(
    'traefik',
    { metadata: { name: INGRESS_CLASS }, spec: { controller: 'traefik.io/ingress-controller' } },
    opts,
  );
  const dynamic = new k8s.core.v1.ConfigMap(
    'traefik-tls',
    {
      metadata: { name: 'traefik-tls', namespace: INGRESS_NAMESPACE },
      data: {
        'tls.yml': [
          'tls:',
          '  stores:',
          '    default:',
          '      defaultCertificate:',
          '        certFile: /config/tls.crt',
          '        keyFile: /config/tls.key',
          '',
        ].join('\n'),
      },
    },
    opts,
  );
  return new k8s.apps.v1.DaemonSet(
    'traefik',
    {
      metadata: { name: 'traefik', namespace: INGRESS_NAMESPACE, labels },
      spec: {
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            ...onPool('run', single),
            serviceAccountName: sa.metadata.name,
            hostNetwork: true,
            dnsPolicy: 'ClusterFirstWithHostNet',
            containers: [
              {
                name: 'traefik',
                image,
                args: [
                  `--entrypoints.web.address=${bind}:${web}`,
                  `--entrypoints.websecure.address=${bind}:${websecure}`,
                  '--ping=true',
                  '--ping.entrypoint=web',
                  '--providers.kubernetesingress=true',
                  `--providers.kubernetesingress.ingressclass=${INGRESS_CLASS}`,
                  '--providers.file.directory=/config',
                ],
                ports: [
                  { name: 'web', containerPort: web, hostPort: web },
                  { name: 'websecure', containerPort: websecure, hostPort: websecure },
                ],
                ...(apiServerEnv.length ? { env: apiServerEnv } : {}),
                readinessProbe: { httpGet: { path: '/ping', port: web, ...(bind ? { host: bind } : {}) } },
                securityContext: {
                  capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
                  readOnlyRootFilesystem: true,
                  runAsNonRoot: true,
                  runAsUser: 65532,
                },
                volumeMounts: [{ name: 'config', mountPath: '/config', readOnly: true }],
              },
            ],
            volumes: [
              {
                // The certificate in the directory the file provider watches: when cert-manager
                // renews it, the kubelet swaps the volume's files, Traefik sees the change there and
                // reloads (it reads the files' contents into its configuration), without a restart.
                name: 'config',
                projected: {
                  sources: [
                    { configMap: { name: dynamic.metadata.name } },
                    // Optional: Traefik serves (its own default certificate) before the first one
                    // is issued, and where no cert-manager runs.
                    { secret: { name: WILDCARD_SECRET, optional: true } },
                  ],
                },
              },
            ],
          },
        },
      },
    },
    opts,
  );
}
