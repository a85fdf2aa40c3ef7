import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import { INGRESS_CLASS, INGRESS_NAMESPACE, onPool, WILDCARD_SECRET } from './placement.ts';

const labels = { app: 'traefik' };

/**
 * Traefik as a DaemonSet on the run nodes' host network (the Cloudflare pool's origins), serving
 * Ingresses of class "traefik" and the wildcard certificate as its default. Plain objects, no
 * Helm chart (charts cannot be downloaded on the machines this is tested on).
 */
export function traefik(image: string, opts: pulumi.CustomResourceOptions): k8s.apps.v1.DaemonSet {
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
          '        certFile: /certs/tls.crt',
          '        keyFile: /certs/tls.key',
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
            ...onPool('run'),
            serviceAccountName: sa.metadata.name,
            hostNetwork: true,
            dnsPolicy: 'ClusterFirstWithHostNet',
            containers: [
              {
                name: 'traefik',
                image,
                args: [
                  '--entrypoints.web.address=:80',
                  '--entrypoints.websecure.address=:443',
                  '--ping=true',
                  '--ping.entrypoint=web',
                  '--providers.kubernetesingress=true',
                  `--providers.kubernetesingress.ingressclass=${INGRESS_CLASS}`,
                  '--providers.file.directory=/config',
                ],
                ports: [
                  { name: 'web', containerPort: 80, hostPort: 80 },
                  { name: 'websecure', containerPort: 443, hostPort: 443 },
                ],
                readinessProbe: { httpGet: { path: '/ping', port: 80 } },
                securityContext: {
                  capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
                  readOnlyRootFilesystem: true,
                  runAsNonRoot: true,
                  runAsUser: 65532,
                },
                volumeMounts: [
                  { name: 'certs', mountPath: '/certs', readOnly: true },
                  { name: 'config', mountPath: '/config', readOnly: true },
                ],
              },
            ],
            volumes: [
              { name: 'certs', secret: { secretName: WILDCARD_SECRET } },
              { name: 'config', configMap: { name: dynamic.metadata.name } },
            ],
          },
        },
      },
    },
    opts,
  );
}
