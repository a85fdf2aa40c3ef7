import fs from 'node:fs';
import type { TlsFiles } from './api.ts';
import { writeIfChanged } from './layout.ts';

/** The context name every kubeconfig of the cluster uses. */
export const CONTEXT = 'deploy-mcp';

/**
 * Writes a kubeconfig (JSON, which every YAML reader takes) for `user`, with its certificates
 * embedded so the file alone is enough to connect.
 */
export function writeKubeconfig(file: string, server: string, user: string, tls: TlsFiles): void {
  const b64 = (f: string) => fs.readFileSync(f).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: CONTEXT, cluster: { server, 'certificate-authority-data': b64(tls.ca) } }],
    users: [
      {
        name: user,
        user: { 'client-certificate-data': b64(tls.cert), 'client-key-data': b64(tls.key) },
      },
    ],
    contexts: [{ name: CONTEXT, context: { cluster: CONTEXT, user } }],
    'current-context': CONTEXT,
    preferences: {},
  };
  writeIfChanged(file, `${JSON.stringify(config, null, 2)}\n`);
}
