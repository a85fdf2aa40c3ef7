/**
 * cert-manager's RBAC, rule for rule as the Helm chart of the pinned module gives it
 * (`deploy/charts/cert-manager/templates/{rbac,webhook-rbac,cainjector-rbac}.yaml`, chart
 * defaults), for what our binaries run (scripts/cert-manager/README.md): the controller's
 * CertificateSigningRequest role is left out (those controllers are not in the binary), as are
 * the chart's aggregated view/edit roles for users. Nothing here is wider than the
 * chart; test/kubernetes/cert-manager.test.ts compares these rules with the module's templates.
 */

export type Rule = {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
};

const read = ['get', 'list', 'watch'];
const events: Rule = { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] };

/** ClusterRoles of the controller, by the chart's name suffix (`cert-manager-controller-<suffix>`). */
export const CONTROLLER_CLUSTER_ROLES: Record<string, Rule[]> = {
  issuers: [
    { apiGroups: ['cert-manager.io'], resources: ['issuers', 'issuers/status'], verbs: ['update', 'patch'] },
    { apiGroups: ['cert-manager.io'], resources: ['issuers'], verbs: read },
    { apiGroups: [''], resources: ['secrets'], verbs: [...read, 'create', 'update', 'delete'] },
    events,
  ],
  clusterissuers: [
    {
      apiGroups: ['cert-manager.io'],
      resources: ['clusterissuers', 'clusterissuers/status'],
      verbs: ['update', 'patch'],
    },
    { apiGroups: ['cert-manager.io'], resources: ['clusterissuers'], verbs: read },
    { apiGroups: [''], resources: ['secrets'], verbs: [...read, 'create', 'update', 'delete'] },
    events,
  ],
  certificates: [
    {
      apiGroups: ['cert-manager.io'],
      resources: ['certificates', 'certificates/status', 'certificaterequests', 'certificaterequests/status'],
      verbs: ['update', 'patch'],
    },
    {
      apiGroups: ['cert-manager.io'],
      resources: ['certificates', 'certificaterequests', 'clusterissuers', 'issuers'],
      verbs: read,
    },
    {
      apiGroups: ['cert-manager.io'],
      resources: ['certificates/finalizers', 'certificaterequests/finalizers'],
      verbs: ['update'],
    },
    { apiGroups: ['acme.cert-manager.io'], resources: ['orders'], verbs: ['create', 'delete', ...read] },
    { apiGroups: [''], resources: ['secrets'], verbs: [...read, 'create', 'update', 'delete', 'patch'] },
    events,
  ],
  orders: [
    {
      apiGroups: ['acme.cert-manager.io'],
      resources: ['orders', 'orders/status'],
      verbs: ['update', 'patch'],
    },
    { apiGroups: ['acme.cert-manager.io'], resources: ['orders', 'challenges'], verbs: read },
    { apiGroups: ['cert-manager.io'], resources: ['clusterissuers', 'issuers'], verbs: read },
    { apiGroups: ['acme.cert-manager.io'], resources: ['challenges'], verbs: ['create', 'delete'] },
    { apiGroups: ['acme.cert-manager.io'], resources: ['orders/finalizers'], verbs: ['update'] },
    {
      apiGroups: ['cert-manager.io'],
      resources: ['clusterissuers/finalizers', 'issuers/finalizers'],
      verbs: ['update'],
    },
    { apiGroups: [''], resources: ['secrets'], verbs: read },
    events,
  ],
  challenges: [
    {
      apiGroups: ['acme.cert-manager.io'],
      resources: ['challenges', 'challenges/status'],
      verbs: ['update', 'patch'],
    },
    { apiGroups: ['acme.cert-manager.io'], resources: ['challenges'], verbs: read },
    { apiGroups: ['cert-manager.io'], resources: ['issuers', 'clusterissuers'], verbs: read },
    { apiGroups: [''], resources: ['secrets'], verbs: read },
    events,
    // The challenge controller's HTTP-01 solver objects (its informers list them even for DNS-01).
    { apiGroups: [''], resources: ['pods', 'services'], verbs: [...read, 'create', 'delete'] },
    {
      apiGroups: ['networking.k8s.io'],
      resources: ['ingresses'],
      verbs: [...read, 'create', 'delete', 'update'],
    },
    {
      apiGroups: ['gateway.networking.k8s.io'],
      resources: ['httproutes'],
      verbs: [...read, 'create', 'delete', 'update'],
    },
    { apiGroups: ['route.openshift.io'], resources: ['routes/custom-host'], verbs: ['create'] },
    { apiGroups: ['acme.cert-manager.io'], resources: ['challenges/finalizers'], verbs: ['update'] },
  ],
  // Named after the ingress-shim, but the chart's only grant to create CertificateRequests (the
  // certificates controllers' request manager needs it): kept whole.
  'ingress-shim': [
    {
      apiGroups: ['cert-manager.io'],
      resources: ['certificates', 'certificaterequests'],
      verbs: ['create', 'update', 'delete'],
    },
    {
      apiGroups: ['cert-manager.io'],
      resources: ['certificates', 'certificaterequests', 'issuers', 'clusterissuers'],
      verbs: read,
    },
    { apiGroups: ['networking.k8s.io'], resources: ['ingresses'], verbs: read },
    { apiGroups: ['networking.k8s.io'], resources: ['ingresses/finalizers'], verbs: ['update'] },
    {
      apiGroups: ['gateway.networking.k8s.io'],
      resources: ['gateways', 'httproutes', 'listenersets'],
      verbs: read,
    },
    {
      apiGroups: ['gateway.networking.k8s.io'],
      resources: ['gateways/finalizers', 'httproutes/finalizers', 'listenersets/finalizers'],
      verbs: ['update'],
    },
    events,
  ],
  // The approver controller approves CertificateRequests of cert-manager's own issuers (the
  // chart's default `approveSignerNames`).
  'approve:cert-manager-io': [
    {
      apiGroups: ['cert-manager.io'],
      resources: ['signers'],
      verbs: ['approve'],
      resourceNames: ['issuers.cert-manager.io/*', 'clusterissuers.cert-manager.io/*'],
    },
  ],
};

/** The controller's leader election Lease, in the leader election namespace. */
export const CONTROLLER_LEADER_ELECTION: Rule[] = [
  {
    apiGroups: ['coordination.k8s.io'],
    resources: ['leases'],
    resourceNames: ['cert-manager-controller'],
    verbs: ['get', 'update', 'patch'],
  },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
];

export const CAINJECTOR_CLUSTER_ROLE: Rule[] = [
  { apiGroups: ['cert-manager.io'], resources: ['certificates'], verbs: read },
  { apiGroups: [''], resources: ['secrets'], verbs: read },
  { apiGroups: [''], resources: ['events'], verbs: ['get', 'create', 'update', 'patch'] },
  {
    apiGroups: ['admissionregistration.k8s.io'],
    resources: ['validatingwebhookconfigurations', 'mutatingwebhookconfigurations'],
    verbs: [...read, 'update', 'patch'],
  },
  { apiGroups: ['apiregistration.k8s.io'], resources: ['apiservices'], verbs: [...read, 'update', 'patch'] },
  {
    apiGroups: ['apiextensions.k8s.io'],
    resources: ['customresourcedefinitions'],
    verbs: [...read, 'update', 'patch'],
  },
];

export const CAINJECTOR_LEADER_ELECTION: Rule[] = [
  {
    apiGroups: ['coordination.k8s.io'],
    resources: ['leases'],
    resourceNames: [
      'cert-manager-cainjector-leader-election',
      'cert-manager-cainjector-leader-election-core',
    ],
    verbs: ['get', 'update', 'patch'],
  },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
];

/** The webhook's own serving CA Secret (`<webhook>-ca`), in cert-manager's namespace. */
export function webhookDynamicServingRules(caSecret: string): Rule[] {
  return [
    { apiGroups: [''], resources: ['secrets'], resourceNames: [caSecret], verbs: [...read, 'update'] },
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  ];
}

/** The webhook asks the API server whether a CertificateRequest's approver may approve. */
export const WEBHOOK_SUBJECT_ACCESS_REVIEWS: Rule[] = [
  { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
];
