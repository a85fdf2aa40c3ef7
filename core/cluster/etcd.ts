import path from 'node:path';
import { type Daemon, startDaemon } from '../daemons/supervise.ts';
import { httpsOk } from './api.ts';
import type { Pki } from './certificates.ts';
import { SYSTEM_PATH } from './exec.ts';

export type EtcdOptions = {
  /** Path to `etcd`. */
  bin: string;
  dir: string;
  pki: Pki;
  clientPort: number;
  peerPort: number;
};

/** The etcd client URL the API server uses. */
export const etcdUrl = (clientPort: number) => `https://127.0.0.1:${clientPort}`;

/** One etcd member on loopback: TLS client port with client-certificate auth, plain peer port. */
export function startEtcd(o: EtcdOptions): Promise<Daemon> {
  const client = etcdUrl(o.clientPort);
  const peer = `http://127.0.0.1:${o.peerPort}`;
  const etcd = o.pki.cert('etcd');
  return startDaemon({
    name: 'etcd',
    command: o.bin,
    args: [
      '--name=default',
      `--data-dir=${path.join(o.dir, 'data')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=default=${peer}`,
      `--cert-file=${etcd.cert}`,
      `--key-file=${etcd.key}`,
      `--trusted-ca-file=${o.pki.caCert}`,
      '--client-cert-auth',
      '--log-level=warn',
    ],
    // A new CA (re-issued certificates) restarts it.
    configFiles: [o.pki.caCert],
    env: { PATH: SYSTEM_PATH },
    logFile: path.join(o.dir, 'etcd.log'),
    ports: { client: o.clientPort, peer: o.peerPort },
    ready: () => httpsOk(`${client}/health`, o.pki.client('apiserver-etcd-client')),
    readyTimeoutMs: 60_000,
  });
}
