import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { httpOk } from '../daemons/probes.ts';
import { type Daemon, startDaemon } from '../daemons/supervise.ts';
import { traefikConfig } from '../daemons/traefik.ts';
import type { KubeApi, KubeObject } from './api.ts';
import { SYSTEM_PATH } from './exec.ts';
import { writeIfChanged } from './layout.ts';

/** The IngressClass Traefik serves (also the cluster's default class). */
export const INGRESS_CLASS = 'traefik';
/** Namespace of Traefik's ServiceAccount (Traefik itself runs on the host, not in a pod). */
export const INGRESS_NAMESPACE = 'traefik';
const ACCOUNT = 'traefik';
const TOKEN_SECRET = 'traefik-token';

/** What Traefik's Kubernetes Ingress provider reads, and the class it answers to. */
export function ingressObjects(): KubeObject[] {
  const readOnly = ['get', 'list', 'watch'];
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: INGRESS_NAMESPACE } },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: ACCOUNT, namespace: INGRESS_NAMESPACE },
    },
    {
      // A token that lives as long as the Secret: Traefik's config stays the same across
      // restarts, so a running Traefik is adopted.
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/service-account-token',
      metadata: {
        name: TOKEN_SECRET,
        namespace: INGRESS_NAMESPACE,
        annotations: { 'kubernetes.io/service-account.name': ACCOUNT },
      },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'deploy-mcp-traefik' },
      rules: [
        { apiGroups: [''], resources: ['services', 'secrets', 'nodes'], verbs: readOnly },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: readOnly },
        { apiGroups: ['networking.k8s.io'], resources: ['ingresses', 'ingressclasses'], verbs: readOnly },
        { apiGroups: ['networking.k8s.io'], resources: ['ingresses/status'], verbs: ['update'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'deploy-mcp-traefik' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'deploy-mcp-traefik' },
      subjects: [{ kind: 'ServiceAccount', name: ACCOUNT, namespace: INGRESS_NAMESPACE }],
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'IngressClass',
      metadata: {
        name: INGRESS_CLASS,
        annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' },
      },
      spec: { controller: 'traefik.io/ingress-controller' },
    },
  ];
}

/**
 * Applies Traefik's account, its read access and the IngressClass, then waits for the token
 * controller (kube-controller-manager) to fill the account's token Secret.
 */
export async function ensureIngressAccess(api: KubeApi, timeoutMs = 60_000): Promise<string> {
  for (const obj of ingressObjects()) await api.apply(obj);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const secret = await api.get<{ data?: { token?: string } }>(
      `/api/v1/namespaces/${INGRESS_NAMESPACE}/secrets/${TOKEN_SECRET}`,
    );
    if (secret?.data?.token) return Buffer.from(secret.data.token, 'base64').toString();
    await sleep(200);
  }
  throw new Error(
    `the token of ServiceAccount ${INGRESS_NAMESPACE}/${ACCOUNT} was not issued within ${timeoutMs} ms`,
  );
}

export type IngressOptions = {
  /** Path to `traefik`. */
  bin: string;
  dir: string;
  apiServerUrl: string;
  caFile: string;
  token: string;
  /** Plain-HTTP entry point for Ingress hosts. */
  port: number;
  /** Ping entry point (readiness). */
  pingPort: number;
};

/**
 * Traefik as the cluster's ingress controller, on the host: it watches Ingresses of class
 * `traefik` through the API (as its ServiceAccount) and proxies to the pods' addresses from
 * EndpointSlices, so no kube-proxy is needed.
 */
export function startIngress(o: IngressOptions): Promise<Daemon> {
  const configFile = path.join(o.dir, 'traefik.yml');
  writeIfChanged(
    configFile,
    traefikConfig({
      web: `127.0.0.1:${o.port}`,
      adminPort: o.pingPort,
      providers: [
        '  kubernetesIngress:',
        `    endpoint: "${o.apiServerUrl}"`,
        `    token: "${o.token}"`,
        `    certAuthFilePath: "${o.caFile}"`,
        `    ingressClass: "${INGRESS_CLASS}"`,
      ],
    }),
  );
  return startDaemon({
    name: 'traefik',
    command: o.bin,
    args: ['--configFile', configFile],
    configFiles: [configFile, o.caFile],
    env: { PATH: SYSTEM_PATH },
    logFile: path.join(o.dir, 'traefik.log'),
    ports: { web: o.port, ping: o.pingPort },
    ready: () => httpOk({ url: `http://127.0.0.1:${o.pingPort}/ping` }),
  });
}
