import { LABELS } from './names.ts';

/**
 * What the deployer may do on a cluster, as plain manifests: the platform program declares them
 * (platform/cluster/deployer.ts) and the cluster tests apply the very same objects.
 *
 * Two grants, so that the deployer can neither read nor write outside tenants' namespaces:
 * - cluster-wide (ClusterRole DEPLOYER_ROLE): namespaces, and RoleBindings to TENANT_ROLE only
 *   (`bind` is limited to that role by name). The ValidatingAdmissionPolicy below limits those
 *   writes to tenants' namespaces: named tenant-…, labelled with a user, Pod Security
 *   "restricted" enforced; RoleBindings only there, only to TENANT_ROLE, only for the deployer.
 * - per tenant namespace (ClusterRole TENANT_ROLE, bound by a RoleBinding the tenant stack
 *   makes): everything a tenant's stacks declare and what the runtime reads (pods, logs,
 *   endpoints). Nothing here reaches kube-system's or the platform's secrets.
 */

/** The deployer's ServiceAccount (namespace, name): the identity its pods run as. */
export type ServiceAccountRef = { namespace: string; name: string };

/**
 * The labels of the deployer-worker's pods (platform/cluster/deployer.ts): tenants' ingress
 * policies let them in, so the worker can ask a new release's pod its health path.
 */
export const DEPLOYER_WORKER_POD_LABELS = { app: 'deployer-worker' } as const;

export const DEPLOYER_ROLE = 'deploy-mcp-deployer';
export const TENANT_ROLE = 'deploy-mcp-tenant';
/** The RoleBinding the tenant stack makes in the tenant's namespace. */
export const TENANT_ROLE_BINDING = 'deploy-mcp-deployer';
const POLICY = 'deploy-mcp-deployer-tenants-only';

const ALL = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const READ = ['get', 'list', 'watch'];

/** The ServiceAccount's user name in the API (what RBAC and admission policies see). */
export function serviceAccountUser(sa: ServiceAccountRef): string {
  return `system:serviceaccount:${sa.namespace}:${sa.name}`;
}

/** Parses "namespace/name" (DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT). */
export function parseServiceAccount(value: string): ServiceAccountRef {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(value);
  if (!m) throw new Error(`"${value}" is not a service account as namespace/name`);
  return { namespace: m[1] as string, name: m[3] as string };
}

/** Rules of TENANT_ROLE: the objects of tenant-program.ts and service-program.ts, and the runtime's reads. */
export const TENANT_RULES = [
  { apiGroups: [''], resources: ['secrets', 'services', 'resourcequotas', 'limitranges'], verbs: ALL },
  { apiGroups: [''], resources: ['pods', 'pods/log', 'endpoints', 'events'], verbs: READ },
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ALL },
  { apiGroups: ['apps'], resources: ['replicasets'], verbs: READ },
  { apiGroups: ['networking.k8s.io'], resources: ['ingresses', 'networkpolicies'], verbs: ALL },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: READ },
];

/** Rules of DEPLOYER_ROLE (cluster-wide; writes narrowed by the admission policy). */
export const DEPLOYER_RULES = [
  { apiGroups: [''], resources: ['namespaces'], verbs: ALL },
  // The tenant stack declares the tenant's quota, defaults and policies right after the namespace,
  // in the same update: before its RoleBinding can be relied on. The policy keeps them to tenants.
  { apiGroups: [''], resources: ['resourcequotas', 'limitranges'], verbs: ALL },
  { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ALL },
  { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ALL },
  {
    apiGroups: ['rbac.authorization.k8s.io'],
    resources: ['clusterroles'],
    verbs: ['bind'],
    resourceNames: [TENANT_ROLE],
  },
  // Whether its grant in a new namespace is in effect yet (workers/runtimes/kubernetes.ts).
  { apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews'], verbs: ['create'] },
];

const TENANT_NS = `has(namespaceObject.metadata.labels) && '${LABELS.user}' in namespaceObject.metadata.labels && namespaceObject.metadata.name.startsWith('tenant-')`;
const isTenantNamespace = (o: string) =>
  `${o}.metadata.name.startsWith('tenant-') && has(${o}.metadata.labels) && '${LABELS.user}' in ${o}.metadata.labels`;

/** The admission policy that keeps the deployer's cluster-wide writes inside tenants' namespaces. */
export function deployerPolicy(sa: ServiceAccountRef) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: POLICY },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        resourceRules: [
          {
            apiGroups: [''],
            apiVersions: ['v1'],
            operations: ['CREATE', 'UPDATE', 'DELETE'],
            resources: ['namespaces'],
          },
          {
            apiGroups: ['', 'networking.k8s.io', 'rbac.authorization.k8s.io'],
            apiVersions: ['v1'],
            operations: ['CREATE', 'UPDATE', 'DELETE'],
            resources: ['resourcequotas', 'limitranges', 'networkpolicies', 'rolebindings'],
          },
        ],
      },
      matchConditions: [
        { name: 'is-deployer', expression: `request.userInfo.username == '${serviceAccountUser(sa)}'` },
      ],
      validations: [
        {
          expression: `request.resource.resource != 'namespaces' || (request.operation == 'DELETE' ? ${isTenantNamespace('oldObject')} : ${isTenantNamespace('object')} && 'pod-security.kubernetes.io/enforce' in object.metadata.labels && object.metadata.labels['pod-security.kubernetes.io/enforce'] == 'restricted' && (request.operation == 'CREATE' || ${isTenantNamespace('oldObject')}))`,
          message:
            'the deployer may only create, change or delete tenant namespaces (tenant-…, labelled, Pod Security restricted)',
        },
        {
          expression: `request.resource.resource == 'namespaces' || (${TENANT_NS})`,
          message:
            "the deployer may only write quotas, limits, policies and role bindings in tenants' namespaces",
        },
        {
          expression: `request.resource.resource != 'rolebindings' || request.operation == 'DELETE' || (object.roleRef.kind == 'ClusterRole' && object.roleRef.name == '${TENANT_ROLE}' && size(object.subjects) == 1 && object.subjects[0].kind == 'ServiceAccount' && object.subjects[0].namespace == '${sa.namespace}' && object.subjects[0].name == '${sa.name}')`,
          message: `the deployer may only bind itself to ${TENANT_ROLE}`,
        },
      ],
    },
  };
}

/** Every object of the deployer's access, in the order they can be applied. */
export function deployerAccessManifests(sa: ServiceAccountRef) {
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa.name, namespace: sa.namespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: TENANT_ROLE },
      rules: TENANT_RULES,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: DEPLOYER_ROLE },
      rules: DEPLOYER_RULES,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: DEPLOYER_ROLE },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: DEPLOYER_ROLE },
      subjects: [{ kind: 'ServiceAccount', namespace: sa.namespace, name: sa.name }],
    },
    deployerPolicy(sa),
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: POLICY },
      spec: { policyName: POLICY, validationActions: ['Deny'] },
    },
  ];
}

/** The RoleBinding a tenant stack makes so the deployer gets TENANT_ROLE in that namespace. */
export function tenantRoleBinding(namespace: string, sa: ServiceAccountRef) {
  return {
    metadata: { name: TENANT_ROLE_BINDING, namespace },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: TENANT_ROLE },
    subjects: [{ kind: 'ServiceAccount', namespace: sa.namespace, name: sa.name }],
  };
}

/**
 * A kubeconfig for a pod running as the deployer's ServiceAccount: the API through its in-cluster
 * Service, the projected token and CA read from their files (kubelet rotates the token). It holds
 * no credential, so it can live in a ConfigMap.
 */
export function inClusterKubeconfig(server = 'https://kubernetes.default.svc'): string {
  const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'in-cluster',
        cluster: { server, 'certificate-authority': `${sa}/ca.crt` },
      },
    ],
    users: [{ name: 'deployer', user: { tokenFile: `${sa}/token` } }],
    contexts: [{ name: 'in-cluster', context: { cluster: 'in-cluster', user: 'deployer' } }],
    'current-context': 'in-cluster',
  });
}
