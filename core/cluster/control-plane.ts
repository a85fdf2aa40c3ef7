import https from 'node:https';
import path from 'node:path';
import { type Daemon, startDaemon } from '../daemons/supervise.ts';
import { httpsOk } from './api.ts';
import type { Pki } from './certificates.ts';
import { etcdUrl } from './etcd.ts';
import { SYSTEM_PATH } from './exec.ts';

/** Addresses of Services (never routed here: there is no kube-proxy). */
export const SERVICE_CIDR = '10.96.0.0/16';

export type ApiServerOptions = {
  /** Path to `kube-apiserver`. */
  bin: string;
  dir: string;
  pki: Pki;
  port: number;
  etcdClientPort: number;
};

export const apiServerUrl = (port: number) => `https://127.0.0.1:${port}`;

/**
 * kube-apiserver on loopback: etcd over mTLS, client certificates and service-account tokens,
 * Node + RBAC authorization, Pod Security admission (on by default). The endpoint reconciler is
 * off: it would publish 127.0.0.1 as the `kubernetes` Service's endpoint, which the API refuses.
 * Kubelets are dialled by hostname (the node is `localhost`).
 */
export function startApiServer(o: ApiServerOptions): Promise<Daemon> {
  const etcdClient = o.pki.cert('apiserver-etcd-client');
  const serving = o.pki.cert('apiserver');
  const kubeletClient = o.pki.cert('apiserver-kubelet-client');
  const url = apiServerUrl(o.port);
  return startDaemon({
    name: 'kube-apiserver',
    command: o.bin,
    args: [
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${o.port}`,
      `--etcd-servers=${etcdUrl(o.etcdClientPort)}`,
      `--etcd-cafile=${o.pki.caCert}`,
      `--etcd-certfile=${etcdClient.cert}`,
      `--etcd-keyfile=${etcdClient.key}`,
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--client-ca-file=${o.pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${o.pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${o.pki.serviceAccountKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      // Privileged pods are allowed by the API; Pod Security admission refuses them per namespace.
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
      '--kubelet-preferred-address-types=Hostname',
      `--kubelet-certificate-authority=${o.pki.caCert}`,
      `--kubelet-client-certificate=${kubeletClient.cert}`,
      `--kubelet-client-key=${kubeletClient.key}`,
      '--profiling=false',
      '--v=1',
    ],
    configFiles: [o.pki.caCert],
    env: { PATH: SYSTEM_PATH },
    logFile: path.join(o.dir, 'kube-apiserver.log'),
    ports: { secure: o.port },
    ready: () => httpsOk(`${url}/readyz`, o.pki.client('admin')),
    readyTimeoutMs: 120_000,
  });
}

export type ComponentOptions = {
  /** Path to the binary. */
  bin: string;
  dir: string;
  pki: Pki;
  /** Its own kubeconfig (its client certificate). */
  kubeconfig: string;
  /** Its health/metrics port on 127.0.0.1. */
  port: number;
};

/** kube-controller-manager: no leader election, no node IPAM (the CNI config owns pod ranges). */
export function startControllerManager(o: ComponentOptions): Promise<Daemon> {
  return startDaemon({
    name: 'kube-controller-manager',
    command: o.bin,
    args: [
      ...componentArgs(o),
      '--controllers=*,-nodeipam,-cloud-node-lifecycle',
      `--service-account-private-key-file=${o.pki.serviceAccountKey}`,
      `--root-ca-file=${o.pki.caCert}`,
      `--cluster-signing-cert-file=${o.pki.caCert}`,
      `--cluster-signing-key-file=${o.pki.caKey}`,
      '--use-service-account-credentials=true',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
    ],
    configFiles: [o.pki.caCert],
    env: { PATH: SYSTEM_PATH },
    logFile: path.join(o.dir, 'kube-controller-manager.log'),
    ports: { secure: o.port },
    ready: () => healthz(o.port),
    readyTimeoutMs: 60_000,
  });
}

export function startScheduler(o: ComponentOptions): Promise<Daemon> {
  return startDaemon({
    name: 'kube-scheduler',
    command: o.bin,
    args: componentArgs(o),
    configFiles: [o.pki.caCert],
    env: { PATH: SYSTEM_PATH },
    logFile: path.join(o.dir, 'kube-scheduler.log'),
    ports: { secure: o.port },
    ready: () => healthz(o.port),
    readyTimeoutMs: 60_000,
  });
}

function componentArgs(o: ComponentOptions): string[] {
  return [
    `--kubeconfig=${o.kubeconfig}`,
    `--authentication-kubeconfig=${o.kubeconfig}`,
    `--authorization-kubeconfig=${o.kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${o.port}`,
    `--cert-dir=${path.join(o.dir, 'serving')}`,
    '--leader-elect=false',
    '--profiling=false',
    '--v=1',
  ];
}

/**
 * GET /healthz on a component's port. It serves with a certificate it made itself, on loopback,
 * and /healthz needs no credentials: only the answer matters.
 */
function healthz(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get(
      `https://127.0.0.1:${port}/healthz`,
      { rejectUnauthorized: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}
