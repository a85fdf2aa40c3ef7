import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';
import type { SingleNodeConfig } from '../config.ts';
import {
  CAINJECTOR_CLUSTER_ROLE,
  CAINJECTOR_LEADER_ELECTION,
  CONTROLLER_CLUSTER_ROLES,
  CONTROLLER_LEADER_ELECTION,
  type Rule,
  WEBHOOK_SUBJECT_ACCESS_REVIEWS,
  webhookDynamicServingRules,
} from './cert-manager-rbac.ts';
import { onPool } from './placement.ts';

/** cert-manager's namespace: its components, the ClusterIssuers' Secrets, its leader election Leases. */
export const CERT_MANAGER_NAMESPACE = 'cert-manager';
/** The release these objects match (scripts/versions.sh CERT_MANAGER_VERSION). */
export const CERT_MANAGER_VERSION = 'v1.21.2';

export type CertManagerImages = { controller: string; webhook: string; cainjector: string };

/** Upstream's images of that release (production); the one-node test builds its own (platform/local/images.ts). */
export const UPSTREAM_CERT_MANAGER_IMAGES: CertManagerImages = {
  controller: `quay.io/jetstack/cert-manager-controller:${CERT_MANAGER_VERSION}`,
  webhook: `quay.io/jetstack/cert-manager-webhook:${CERT_MANAGER_VERSION}`,
  cainjector: `quay.io/jetstack/cert-manager-cainjector:${CERT_MANAGER_VERSION}`,
};

const WEBHOOK = 'cert-manager-webhook';
const WEBHOOK_CA_SECRET = `${WEBHOOK}-ca`;
/** The chart's defaults: the webhook serves TLS on 10250, its health on 6080. */
const WEBHOOK_PORTS = { secure: 10250, healthz: 6080 };

export type CertManagerInstallArgs = {
  /** Directory of the pinned module's CRDs (deploy/crds/*.yaml), as setup:kubernetes copies them. */
  crdsDir: string;
  images?: CertManagerImages;
  single?: SingleNodeConfig;
};

/**
 * cert-manager itself, as the Helm chart of the pinned release installs it with its defaults: the
 * CRDs (the module's own files), the controller, webhook and cainjector Deployments with their
 * ServiceAccounts and RBAC, the webhook's Service and its validating and mutating webhook
 * configurations, whose CA the cainjector injects from the webhook's own CA Secret. Returns what
 * an Issuer or Certificate must wait for: the webhook configurations, once their CA is injected
 * (until then the API server cannot call the webhook, and every cert-manager object is refused).
 *
 * On one node (`single`) the pods use the host network (the API server is on loopback and
 * ClusterIPs are not routed there) and the API server calls the webhook by URL on loopback.
 */
export function installCertManager(
  args: CertManagerInstallArgs,
  opts: pulumi.CustomResourceOptions,
): pulumi.Resource[] {
  const single = args.single;
  const images = args.images ?? UPSTREAM_CERT_MANAGER_IMAGES;
  const webhookPorts = single
    ? { secure: single.ports.certManagerWebhook, healthz: single.ports.certManagerWebhookHealthz }
    : WEBHOOK_PORTS;
  if (webhookPorts.secure === undefined || webhookPorts.healthz === undefined)
    throw new Error(
      'one node: singleNode.ports.certManagerWebhook and certManagerWebhookHealthz are required',
    );
  const ns = new k8s.core.v1.Namespace(
    CERT_MANAGER_NAMESPACE,
    { metadata: { name: CERT_MANAGER_NAMESPACE } },
    opts,
  );
  const inNs = { ...opts, dependsOn: [...asArray(opts.dependsOn), ns] };
  const crds = customResourceDefinitions(args.crdsDir, opts);

  const controller = component('cert-manager', inNs);
  controller.clusterRoles(CONTROLLER_CLUSTER_ROLES);
  controller.leaderElection(CONTROLLER_LEADER_ELECTION);
  const cainjector = component('cert-manager-cainjector', inNs);
  cainjector.clusterRoles({ '': CAINJECTOR_CLUSTER_ROLE });
  cainjector.leaderElection(CAINJECTOR_LEADER_ELECTION);
  const webhook = component(WEBHOOK, inNs);
  webhook.clusterRoles({ subjectaccessreviews: WEBHOOK_SUBJECT_ACCESS_REVIEWS });
  webhook.role('dynamic-serving', CERT_MANAGER_NAMESPACE, webhookDynamicServingRules(WEBHOOK_CA_SECRET));

  const afterCrds = { ...inNs, dependsOn: [...asArray(inNs.dependsOn), ...crds] };
  const deploy = (
    name: string,
    app: string,
    image: string,
    flags: string[],
    extra: Record<string, unknown> = {},
  ) =>
    new k8s.apps.v1.Deployment(
      name,
      {
        metadata: { name, namespace: CERT_MANAGER_NAMESPACE, labels: { app } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app } },
          template: {
            metadata: { labels: { app } },
            spec: {
              ...onPool('ops', single),
              serviceAccountName: name,
              ...(single ? { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' } : {}),
              securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
              containers: [
                {
                  name: app,
                  image,
                  args: flags,
                  env: [
                    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                    ...apiServerEnv(single),
                  ],
                  securityContext: {
                    allowPrivilegeEscalation: false,
                    capabilities: { drop: ['ALL'] },
                    readOnlyRootFilesystem: true,
                    // Upstream's images run as a numbered non-root user; ours have no user database.
                    runAsUser: 65532,
                  },
                  ...extra,
                },
              ],
            },
          },
        },
      },
      afterCrds,
    );

  const leaderNs = `--leader-election-namespace=${CERT_MANAGER_NAMESPACE}`;
  deploy(
    'cert-manager',
    'cert-manager',
    images.controller,
    [
      '--cluster-resource-namespace=$(POD_NAMESPACE)',
      leaderNs,
      // One node: no metrics or health listener on the host's interfaces.
      ...(single ? ['--metrics-listen-address=', '--healthz-listen-address='] : []),
    ],
    single
      ? {}
      : {
          ports: [
            { name: 'http-metrics', containerPort: 9402, protocol: 'TCP' },
            { name: 'http-healthz', containerPort: 9403, protocol: 'TCP' },
          ],
          // The chart's liveness probe (leader election and clock health).
          livenessProbe: {
            httpGet: { path: '/livez', port: 'http-healthz', scheme: 'HTTP' },
            initialDelaySeconds: 10,
            periodSeconds: 10,
            timeoutSeconds: 15,
            failureThreshold: 8,
          },
        },
  );
  const cainjectorDeployment = deploy('cert-manager-cainjector', 'cainjector', images.cainjector, [
    leaderNs,
    ...(single ? ['--metrics-listen-address=0'] : []),
  ]);
  const dnsNames = [WEBHOOK, `${WEBHOOK}.$(POD_NAMESPACE)`, `${WEBHOOK}.$(POD_NAMESPACE).svc`];
  const healthHost = single ? { host: single.bindAddress } : {};
  const webhookDeployment = deploy(
    WEBHOOK,
    'webhook',
    images.webhook,
    [
      `--secure-port=${webhookPorts.secure}`,
      `--healthz-port=${webhookPorts.healthz}`,
      '--dynamic-serving-ca-secret-namespace=$(POD_NAMESPACE)',
      `--dynamic-serving-ca-secret-name=${WEBHOOK_CA_SECRET}`,
      ...[...dnsNames, ...(single ? ['localhost'] : [])].map((n) => `--dynamic-serving-dns-names=${n}`),
      '--metrics-listen-address=0',
    ],
    {
      ports: [
        { name: 'https', containerPort: webhookPorts.secure, protocol: 'TCP' },
        { name: 'healthcheck', containerPort: webhookPorts.healthz, protocol: 'TCP' },
      ],
      livenessProbe: {
        httpGet: { path: '/livez', port: webhookPorts.healthz, scheme: 'HTTP', ...healthHost },
        initialDelaySeconds: 60,
        periodSeconds: 10,
      },
      // Ready once it serves with its own certificate (the chart's probe).
      readinessProbe: {
        httpGet: { path: '/healthz', port: webhookPorts.healthz, scheme: 'HTTP', ...healthHost },
        initialDelaySeconds: 1,
        periodSeconds: 2,
      },
    },
  );
  new k8s.core.v1.Service(
    WEBHOOK,
    {
      metadata: { name: WEBHOOK, namespace: CERT_MANAGER_NAMESPACE },
      spec: {
        type: 'ClusterIP',
        selector: { app: 'webhook' },
        ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 'https' }],
      },
    },
    inNs,
  );

  // The chart's webhook configurations; their CA comes from the webhook's CA Secret (cainjector).
  const clientConfig = (p: string) =>
    single
      ? { url: `https://localhost:${webhookPorts.secure}${p}` }
      : { service: { name: WEBHOOK, namespace: CERT_MANAGER_NAMESPACE, path: p } };
  const webhookMeta = {
    name: WEBHOOK,
    annotations: {
      'cert-manager.io/inject-ca-from-secret': `${CERT_MANAGER_NAMESPACE}/${WEBHOOK_CA_SECRET}`,
      // Pulumi waits until the cainjector has put the CA in.
      'pulumi.com/waitFor': 'jsonpath={.webhooks[0].clientConfig.caBundle}',
    },
  };
  const common = {
    admissionReviewVersions: ['v1'],
    matchPolicy: 'Equivalent',
    timeoutSeconds: 30,
    failurePolicy: 'Fail',
    sideEffects: 'None',
  };
  const afterWebhook = { ...opts, dependsOn: [webhookDeployment, cainjectorDeployment] };
  const validating = new k8s.admissionregistration.v1.ValidatingWebhookConfiguration(
    WEBHOOK,
    {
      metadata: webhookMeta,
      webhooks: [
        {
          name: 'webhook.cert-manager.io',
          namespaceSelector: {
            matchExpressions: [
              { key: 'cert-manager.io/disable-validation', operator: 'NotIn', values: ['true'] },
            ],
          },
          rules: [
            {
              apiGroups: ['cert-manager.io', 'acme.cert-manager.io'],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['*/*'],
            },
          ],
          clientConfig: clientConfig('/validate'),
          ...common,
        },
      ],
    },
    afterWebhook,
  );
  const mutating = new k8s.admissionregistration.v1.MutatingWebhookConfiguration(
    WEBHOOK,
    {
      metadata: webhookMeta,
      webhooks: [
        {
          name: 'webhook.cert-manager.io',
          rules: [
            {
              apiGroups: ['cert-manager.io'],
              apiVersions: ['v1'],
              operations: ['CREATE'],
              resources: ['certificaterequests'],
            },
          ],
          clientConfig: clientConfig('/mutate'),
          ...common,
        },
      ],
    },
    afterWebhook,
  );
  return [validating, mutating];
}

/**
 * The CRDs, one object per file of the directory (the module's `deploy/crds/*.yaml`, as they are),
 * declared through the layer's provider.
 */
function customResourceDefinitions(
  dir: string,
  opts: pulumi.CustomResourceOptions,
): k8s.apiextensions.v1.CustomResourceDefinition[] {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  if (!files.length) throw new Error(`no cert-manager CRDs in ${dir} (npm run setup:kubernetes copies them)`);
  return files.sort().map((file) => {
    const crd = parse(fs.readFileSync(path.join(dir, file), 'utf8')) as {
      kind: string;
      metadata: { name: string };
    };
    if (crd.kind !== 'CustomResourceDefinition') throw new Error(`${file}: not a CustomResourceDefinition`);
    return new k8s.apiextensions.v1.CustomResourceDefinition(
      crd.metadata.name,
      crd as k8s.apiextensions.v1.CustomResourceDefinitionArgs,
      opts,
    );
  });
}

function asArray(d: pulumi.CustomResourceOptions['dependsOn']): pulumi.Input<pulumi.Resource>[] {
  if (!d) return [];
  return Array.isArray(d) ? d : [d as pulumi.Input<pulumi.Resource>];
}

/** One of cert-manager's components: its ServiceAccount and the roles bound to it. */
function component(name: string, opts: pulumi.CustomResourceOptions) {
  new k8s.core.v1.ServiceAccount(name, { metadata: { name, namespace: CERT_MANAGER_NAMESPACE } }, opts);
  const subjects = [{ kind: 'ServiceAccount', name, namespace: CERT_MANAGER_NAMESPACE }];
  const role = (suffix: string, namespace: string, rules: Rule[]) => {
    const roleName = `${name}:${suffix}`;
    new k8s.rbac.v1.Role(roleName, { metadata: { name: roleName, namespace }, rules }, opts);
    new k8s.rbac.v1.RoleBinding(
      roleName,
      {
        metadata: { name: roleName, namespace },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: roleName },
        subjects,
      },
      opts,
    );
  };
  return {
    /** ClusterRoles named `<name>-controller-<suffix>` as the chart names the controller's (`<name>` alone for ''). */
    clusterRoles(roles: Record<string, Rule[]>) {
      for (const [suffix, rules] of Object.entries(roles)) {
        const roleName =
          suffix === ''
            ? name
            : name === 'cert-manager'
              ? `${name}-controller-${suffix}`
              : `${name}:${suffix}`;
        new k8s.rbac.v1.ClusterRole(roleName, { metadata: { name: roleName }, rules }, opts);
        new k8s.rbac.v1.ClusterRoleBinding(
          roleName,
          {
            metadata: { name: roleName },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
            subjects,
          },
          opts,
        );
      }
    },
    leaderElection(rules: Rule[]) {
      role('leaderelection', CERT_MANAGER_NAMESPACE, rules);
    },
    role,
  };
}

/** One node: where host-network pods reach the API server (client-go's in-cluster config reads these). */
function apiServerEnv(single: SingleNodeConfig | undefined) {
  return single
    ? [
        { name: 'KUBERNETES_SERVICE_HOST', value: single.apiServer.host },
        { name: 'KUBERNETES_SERVICE_PORT', value: String(single.apiServer.port) },
      ]
    : [];
}
