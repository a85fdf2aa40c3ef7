import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { TlsFiles } from './api.ts';
import { run } from './exec.ts';

/** The node's name: the kubelet runs with --hostname-override=localhost (it refuses a loopback node IP). */
export const NODE_NAME = 'localhost';

/** First address of the service range (--service-cluster-ip-range): the `kubernetes` Service's. */
export const KUBERNETES_SERVICE_IP = '10.96.0.1';

/** Every certificate of the cluster, signed by one CA. */
const LEAVES = {
  etcd: { cn: 'etcd', usage: 'serverAuth,clientAuth', sans: ['IP:127.0.0.1', 'DNS:localhost'] },
  'apiserver-etcd-client': { cn: 'kube-apiserver-etcd-client', usage: 'clientAuth' },
  apiserver: {
    cn: 'kube-apiserver',
    usage: 'serverAuth',
    sans: [
      'IP:127.0.0.1',
      `IP:${KUBERNETES_SERVICE_IP}`,
      'DNS:localhost',
      'DNS:kubernetes',
      'DNS:kubernetes.default',
      'DNS:kubernetes.default.svc',
      'DNS:kubernetes.default.svc.cluster.local',
    ],
  },
  // The API server calls kubelets (logs, exec) as a member of system:masters.
  'apiserver-kubelet-client': {
    cn: 'kube-apiserver-kubelet-client',
    o: 'system:masters',
    usage: 'clientAuth',
  },
  admin: { cn: 'deploy-mcp-admin', o: 'system:masters', usage: 'clientAuth' },
  'controller-manager': { cn: 'system:kube-controller-manager', usage: 'clientAuth' },
  scheduler: { cn: 'system:kube-scheduler', usage: 'clientAuth' },
  // The Node authorizer knows the kubelet by this name and group.
  kubelet: { cn: `system:node:${NODE_NAME}`, o: 'system:nodes', usage: 'clientAuth' },
  'kubelet-serving': {
    cn: `system:node:${NODE_NAME}`,
    o: 'system:nodes',
    usage: 'serverAuth',
    sans: ['DNS:localhost', 'IP:127.0.0.1'],
  },
} satisfies Record<string, { cn: string; o?: string; usage: string; sans?: string[] }>;

export type CertificateName = keyof typeof LEAVES;

export type Pki = {
  dir: string;
  caCert: string;
  caKey: string;
  /** Service-account token signing key pair. */
  serviceAccountKey: string;
  serviceAccountPub: string;
  /** <dir>/<name>.crt and .key */
  cert: (name: CertificateName) => { cert: string; key: string };
  /** The files a client authenticating as `name` needs. */
  client: (name: CertificateName) => TlsFiles;
};

const DAYS = '3650';
/** P-256 keys: as good as RSA here and generated in milliseconds. */
const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * Creates what is missing of the cluster's CA, certificates and service-account keys under
 * `dir` (a new CA re-issues everything). Returns true when anything was created.
 */
export async function ensureCertificates(dir: string): Promise<{ pki: Pki; created: boolean }> {
  const pki = pkiPaths(dir);
  let created = false;
  if (!fs.existsSync(pki.caCert) || !fs.existsSync(pki.caKey)) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    await run('openssl', [
      'req',
      '-x509',
      ...KEY_ARGS,
      '-keyout',
      pki.caKey,
      '-out',
      pki.caCert,
      '-days',
      DAYS,
      '-subj',
      '/CN=deploy-mcp-cluster-ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ]);
    created = true;
  }
  for (const [name, spec] of Object.entries(LEAVES) as [
    CertificateName,
    (typeof LEAVES)[CertificateName],
  ][]) {
    const { cert, key } = pki.cert(name);
    if (fs.existsSync(cert) && fs.existsSync(key)) continue;
    const csr = `${cert}.csr`;
    const ext = `${cert}.ext`;
    const subject = `${'o' in spec ? `/O=${spec.o}` : ''}/CN=${spec.cn}`;
    await run('openssl', ['req', '-new', ...KEY_ARGS, '-keyout', key, '-out', csr, '-subj', subject]);
    fs.writeFileSync(
      ext,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        `extendedKeyUsage=${spec.usage}`,
        ...('sans' in spec ? [`subjectAltName=${spec.sans.join(',')}`] : []),
        '',
      ].join('\n'),
    );
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      pki.caCert,
      '-CAkey',
      pki.caKey,
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      DAYS,
      '-extfile',
      ext,
      '-out',
      cert,
    ]);
    fs.rmSync(csr);
    fs.rmSync(ext);
    created = true;
  }
  if (!fs.existsSync(pki.serviceAccountKey) || !fs.existsSync(pki.serviceAccountPub)) {
    await run('openssl', [
      'genpkey',
      '-algorithm',
      'EC',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-out',
      pki.serviceAccountKey,
    ]);
    await run('openssl', ['pkey', '-in', pki.serviceAccountKey, '-pubout', '-out', pki.serviceAccountPub]);
    created = true;
  }
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.key')) fs.chmodSync(path.join(dir, f), 0o600);
  return { pki, created };
}

export function pkiPaths(dir: string): Pki {
  const cert = (name: CertificateName) => ({
    cert: path.join(dir, `${name}.crt`),
    key: path.join(dir, `${name}.key`),
  });
  const caCert = path.join(dir, 'ca.crt');
  return {
    dir,
    caCert,
    caKey: path.join(dir, 'ca.key'),
    serviceAccountKey: path.join(dir, 'service-account.key'),
    serviceAccountPub: path.join(dir, 'service-account.pub'),
    cert,
    client: (name) => ({ ca: caCert, ...cert(name) }),
  };
}
