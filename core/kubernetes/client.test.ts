import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterAccess } from './client.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const kubeconfig = `
apiVersion: v1
kind: Config
current-context: prod
clusters:
  - name: prod-cluster
    cluster:
      server: https://10.0.0.2:6443/
      certificate-authority-data: ${b64('CA PEM')}
users:
  - name: deployer
    user:
      client-certificate-data: ${b64('CERT PEM')}
      client-key-data: ${b64('KEY PEM')}
  - name: robot
    user:
      token: t0ken
contexts:
  - name: prod
    context: { cluster: prod-cluster, user: deployer }
  - name: ci
    context: { cluster: prod-cluster, user: robot }
`;

describe('clusterAccess: the API access a kubeconfig grants', () => {
  it('reads the current context from YAML: server, CA and client certificate', () => {
    const a = clusterAccess(kubeconfig);
    expect(a.server).toBe('https://10.0.0.2:6443');
    expect(a.ca?.toString()).toBe('CA PEM');
    expect(a.cert?.toString()).toBe('CERT PEM');
    expect(a.key?.toString()).toBe('KEY PEM');
    expect(a.token).toBeUndefined();
  });

  it('takes another context when asked (a bearer token here), and names one that is missing', () => {
    expect(clusterAccess(kubeconfig, 'ci')).toMatchObject({ token: 't0ken', cert: undefined });
    expect(() => clusterAccess(kubeconfig, 'staging')).toThrow('the kubeconfig has no context "staging"');
  });

  it('reads JSON kubeconfigs too (what deploy-mcp cluster writes)', () => {
    const json = JSON.stringify({
      'current-context': 'c',
      clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:6443' } }],
      users: [{ name: 'u', user: { token: 'x' } }],
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
    });
    expect(clusterAccess(json)).toMatchObject({ server: 'https://127.0.0.1:6443', token: 'x' });
  });

  it("reads a pod's ServiceAccount files: the CA from its path, the token file kept as a path", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubeconfig-'));
    try {
      fs.writeFileSync(path.join(dir, 'ca.crt'), 'CA FROM FILE');
      const json = JSON.stringify({
        'current-context': 'in',
        clusters: [
          {
            name: 'k',
            cluster: { server: 'https://kubernetes.default.svc', 'certificate-authority': `${dir}/ca.crt` },
          },
        ],
        users: [{ name: 'sa', user: { tokenFile: `${dir}/token` } }],
        contexts: [{ name: 'in', context: { cluster: 'k', user: 'sa' } }],
      });
      const a = clusterAccess(json);
      expect(a.ca?.toString()).toBe('CA FROM FILE');
      // Read at each request, not now: the kubelet rotates it.
      expect(a).toMatchObject({ tokenFile: `${dir}/token`, token: undefined });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
