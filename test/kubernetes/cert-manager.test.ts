import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_CACHE_DIR } from '../../core/cluster/cluster.ts';
import { freePort, tcpOpen } from '../../core/daemons/probes.ts';
import {
  CERT_MANAGER_NAMESPACE,
  type CertManagerImages,
} from '../../platform/cluster/cert-manager-install.ts';
import {
  CAINJECTOR_CLUSTER_ROLE,
  CAINJECTOR_LEADER_ELECTION,
  CONTROLLER_CLUSTER_ROLES,
  CONTROLLER_LEADER_ELECTION,
  type Rule,
  WEBHOOK_SUBJECT_ACCESS_REVIEWS,
  webhookDynamicServingRules,
} from '../../platform/cluster/cert-manager-rbac.ts';
import type { ClusterLayerConfig } from '../../platform/config.ts';
import { importCertManagerImages, importPlatformImages } from '../../platform/local/images.ts';
import type { ClusterLayerStack } from '../../platform/local/stack.ts';
import { ALL_POOLS, POOL_LABEL } from '../../platform/pools.ts';
import { kubectl, oneNodeLayer, type TestCluster, useTestCluster } from '../support/cluster.ts';
import { eventually } from '../support/http.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

const exec = promisify(execFile);
const BIN = path.join(repoRoot, '.tools/bin');
/** What `npm run setup:kubernetes` keeps of the pinned cert-manager module (scripts/setup-kubernetes.sh). */
const CERT_MANAGER_DIR = path.join(repoRoot, '.tools/cert-manager');
const APPS_DOMAIN = 'apps.localhost';
const APP_HOST = `web.${APPS_DOMAIN}`;
const CA_SECRET = 'test-ca';

type Condition = { type: string; status: string; reason?: string; message?: string };
type Certificate = {
  spec: Record<string, unknown>;
  status?: { conditions?: Condition[]; revision?: number };
};

/** The certificate Traefik presents for `servername` on loopback, verified against `ca` (chain and name). */
function servedCertificate(port: number, servername: string, ca: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, timeout: 5000 }, () => {
      const raw = socket.getPeerX509Certificate();
      socket.end();
      raw ? resolve(raw) : reject(new Error('no peer certificate'));
    });
    socket.on('timeout', () => socket.destroy(new Error('TLS handshake timed out')));
    socket.on('error', reject);
  });
}

/**
 * The chart's rules as (group, resource, verb, resource name) grants, from the module's own RBAC
 * templates with their Helm expressions blanked (a name made of one becomes `X`) and their
 * conditionals' bodies kept: a superset of what the chart installs with its defaults.
 */
function chartGrants(): Set<string> {
  const grants = new Set<string>();
  for (const file of ['rbac.yaml', 'webhook-rbac.yaml', 'cainjector-rbac.yaml']) {
    const text = fs
      .readFileSync(path.join(CERT_MANAGER_DIR, 'chart-rbac', file), 'utf8')
      .replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, '')
      .split('\n')
      .filter((line) => line.replace(/\{\{[^}]*\}\}/g, '').trim() !== '')
      .map((line) => line.replace(/\{\{[^}]*\}\}/g, 'X'))
      .join('\n');
    for (const doc of parseAllDocuments(text)) {
      const o = doc.toJS() as { kind?: string; rules?: Rule[] } | null;
      if (o?.kind === 'ClusterRole' || o?.kind === 'Role')
        for (const g of grantsOf(o.rules ?? [])) grants.add(g);
    }
  }
  return grants;
}

function grantsOf(rules: Rule[]): string[] {
  return rules.flatMap((r) =>
    r.apiGroups.flatMap((g) =>
      r.resources.flatMap((res) =>
        r.verbs.flatMap((v) => (r.resourceNames ?? ['*']).map((n) => `${g}|${res}|${v}|${n}`)),
      ),
    ),
  );
}

/**
 * Issue 13's cert-manager for real: the in-cluster layer (`platform/cluster`) goes `up` on a
 * one-node cluster of its own with cert-manager installed from the pinned module (its CRDs; the
 * controller, webhook and cainjector built by setup, as images made here), the ClusterIssuer
 * being a CA issuer of the test's own (Let's Encrypt and Cloudflare are out of reach). The
 * wildcard certificate of the apps domain gets Ready, the layer's Traefik serves it on its HTTPS
 * port, and after a re-issue serves the new one without a restart. `destroy` leaves nothing.
 */
describe('cert-manager in the in-cluster layer, on the one-node cluster', () => {
  const work = scratchDir('k8s-cert-manager', path.join(repoRoot, '.data', 'test'));
  let cluster: TestCluster;
  let layer: ClusterLayerStack | undefined;
  let destroyed = false;
  let ports: Required<NonNullable<ClusterLayerConfig['singleNode']>>['ports'];
  let caPem: string;
  let images: CertManagerImages;
  const figures: Record<string, number> = {};
  const admin = (args: string[], input?: string) => kubectl(cluster, args, input);
  const json = async (args: string[]) => JSON.parse(await admin([...args, '-o', 'json']));
  const logs = async () => {
    const out: string[] = [];
    for (const d of ['cert-manager', 'cert-manager-webhook', 'cert-manager-cainjector'])
      out.push(
        `--- ${d}\n${await admin([
          '-n',
          CERT_MANAGER_NAMESPACE,
          'logs',
          `deployment/${d}`,
          '--tail=30',
        ]).catch((e: Error) => e.message)}`,
      );
    return out.join('\n');
  };
  /** The serial of the certificate in the wildcard Secret. */
  const secretSerial = async () => {
    const secret = await json(['-n', 'traefik', 'get', 'secret', 'apps-wildcard-tls']);
    return new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64')).serialNumber;
  };
  const ready = (c: Certificate) =>
    c.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') ?? false;

  beforeAll(async () => {
    ports = {
      web: await freePort(),
      websecure: await freePort(),
      registry: await freePort(),
      buildkit: await freePort(),
      certManagerWebhook: await freePort(),
      certManagerWebhookHealthz: await freePort(),
    };
    let t = Date.now();
    cluster = await useTestCluster({
      dir: path.join(work.dir, 'cluster'),
      registries: [`127.0.0.1:${ports.registry}`],
      ingress: false,
    });
    figures.clusterMs = Date.now() - t;
    await admin(['label', 'node', 'localhost', `${POOL_LABEL}=${ALL_POOLS}`, '--overwrite']);
    t = Date.now();
    const clusterDir = path.join(work.dir, 'cluster');
    const platform = await importPlatformImages({ binDir: BIN, cacheDir: DEFAULT_CACHE_DIR, clusterDir });
    images = await importCertManagerImages({ binDir: BIN, cacheDir: DEFAULT_CACHE_DIR, clusterDir });
    figures.imagesMs = Date.now() - t;
    // The test's CA (an SRE would bring theirs), in cert-manager's namespace before the layer
    // adopts it: the ClusterIssuer's key pair.
    const ca = path.join(work.dir, 'ca');
    fs.mkdirSync(ca);
    await exec('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=deploy-mcp test CA ${process.pid}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout',
      path.join(ca, 'tls.key'),
      '-out',
      path.join(ca, 'tls.crt'),
    ]);
    caPem = fs.readFileSync(path.join(ca, 'tls.crt'), 'utf8');
    await admin(['create', 'namespace', CERT_MANAGER_NAMESPACE]);
    await admin([
      '-n',
      CERT_MANAGER_NAMESPACE,
      'create',
      'secret',
      'tls',
      CA_SECRET,
      `--cert=${path.join(ca, 'tls.crt')}`,
      `--key=${path.join(ca, 'tls.key')}`,
    ]);
    layer = await oneNodeLayer({
      cluster,
      dir: work.dir,
      ports,
      config: {
        appsDomain: APPS_DOMAIN,
        images: { ...platform, deployer: 'unused.invalid/deployer:none' },
        certManagerCrds: path.join(CERT_MANAGER_DIR, 'crds'),
        certManagerImages: images,
        certManagerIssuer: { ca: { secretName: CA_SECRET } },
        certManager: true,
        deployer: false,
      },
    });
    t = Date.now();
    try {
      await layer.up();
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await logs()}`);
    }
    figures.upMs = Date.now() - t;
  }, 600_000);

  afterAll(async () => {
    if (layer && !destroyed) await layer.destroy().catch(() => undefined);
    await cluster?.release();
    console.log('cert-manager figures:', JSON.stringify(figures));
    work.cleanup();
  }, 300_000);

  it('installs cert-manager from the pinned module: CRDs, three components Ready, the webhook in force with its CA injected', async () => {
    const crds = (await admin(['get', 'crd', '-o', 'name']))
      .split('\n')
      .filter((l) => /cert-manager\.io/.test(l));
    expect(crds.sort()).toEqual(
      [
        'challenges.acme.cert-manager.io',
        'orders.acme.cert-manager.io',
        'certificaterequests.cert-manager.io',
        'certificates.cert-manager.io',
        'clusterissuers.cert-manager.io',
        'issuers.cert-manager.io',
      ]
        .map((n) => `customresourcedefinition.apiextensions.k8s.io/${n}`)
        .sort(),
    );
    const pods = (await json(['-n', CERT_MANAGER_NAMESPACE, 'get', 'pods'])).items as {
      spec: { containers: { image: string }[] };
      status: { phase: string };
    }[];
    expect(pods.map((p) => p.status.phase)).toEqual(['Running', 'Running', 'Running']);
    expect(pods.map((p) => p.spec.containers[0]?.image).sort()).toEqual(Object.values(images).sort());
    for (const d of ['cert-manager', 'cert-manager-webhook', 'cert-manager-cainjector'])
      expect(
        (await json(['-n', CERT_MANAGER_NAMESPACE, 'get', 'deployment', d])).status.readyReplicas,
        d,
      ).toBe(1);
    // The cainjector put the webhook's own CA into both configurations.
    const caSecret = await json(['-n', CERT_MANAGER_NAMESPACE, 'get', 'secret', 'cert-manager-webhook-ca']);
    for (const kind of ['validatingwebhookconfiguration', 'mutatingwebhookconfiguration']) {
      const conf = await json(['get', kind, 'cert-manager-webhook']);
      expect(conf.webhooks[0].clientConfig.caBundle, kind).toBe(caSecret.data['ca.crt']);
    }
    // The API server calls the webhook: an invalid Certificate is refused by it.
    const invalid = {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: 'invalid', namespace: 'traefik' },
      spec: { secretName: 'invalid-tls', issuerRef: { name: 'letsencrypt', kind: 'ClusterIssuer' } },
    };
    await expect(admin(['apply', '-f', '-'], JSON.stringify(invalid))).rejects.toThrow(
      /admission webhook "webhook\.cert-manager\.io" denied the request/,
    );
  }, 120_000);

  it("grants cert-manager's components only rules the pinned chart grants", () => {
    const chart = chartGrants();
    const ours = [
      ...Object.values(CONTROLLER_CLUSTER_ROLES).flat(),
      ...CONTROLLER_LEADER_ELECTION,
      ...CAINJECTOR_CLUSTER_ROLE,
      ...CAINJECTOR_LEADER_ELECTION,
      ...WEBHOOK_SUBJECT_ACCESS_REVIEWS,
      // The chart names the webhook's CA Secret after a template: `X-ca` there.
      ...webhookDynamicServingRules('X-ca'),
    ];
    expect(chart.size).toBeGreaterThan(100);
    // A grant is the chart's if it has it for that name, for any name (`*`), or for a name it
    // takes from its values (`X`: the approver's signer names).
    const granted = (g: string) =>
      ['', '*', 'X'].some((n) => chart.has(n ? g.replace(/\|[^|]*$/, `|${n}`) : g));
    expect(grantsOf(ours).filter((g) => !granted(g))).toEqual([]);
    // And the check can fail: a wider rule is caught.
    expect(
      grantsOf([{ apiGroups: [''], resources: ['secrets'], verbs: ['deletecollection'] }]).some(granted),
    ).toBe(false);
  });

  it("issues the wildcard certificate from the layer's ClusterIssuer, served by Traefik and renewed without a restart", async () => {
    let t = Date.now();
    const issuer = await eventually(
      () => json(['get', 'clusterissuer', 'letsencrypt']),
      (c: Certificate) => ready(c),
      60_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await logs()}`);
    });
    expect(issuer.spec).toEqual({ ca: { secretName: CA_SECRET } });
    const cert = await eventually(
      () => json(['-n', 'traefik', 'get', 'certificate', 'apps-wildcard']),
      (c: Certificate) => ready(c),
      120_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await logs()}`);
    });
    figures.issuedMs = Date.now() - t;
    expect(cert.spec.dnsNames).toEqual([`*.${APPS_DOMAIN}`, APPS_DOMAIN]);
    const first = await secretSerial();

    // Traefik serves it for an app host on the HTTPS port once the kubelet has put it in its volume
    // (verified against the test's CA: chain and name).
    t = Date.now();
    const served = await eventually(
      () => servedCertificate(ports.websecure, APP_HOST, caPem),
      (c) => c.serialNumber === first,
      180_000,
    );
    figures.servedMs = Date.now() - t;
    expect(served.subjectAltName).toContain(`DNS:*.${APPS_DOMAIN}`);
    expect(served.checkIssued(new X509Certificate(caPem))).toBe(true);
    const traefikPod = (await json(['-n', 'traefik', 'get', 'pods', '-l', 'app=traefik'])).items[0];

    // A re-issue, as `cmctl renew` asks for it: the Issuing condition on the Certificate's status.
    t = Date.now();
    const conditions = (cert.status?.conditions ?? []) as Condition[];
    await admin([
      '-n',
      'traefik',
      'patch',
      'certificate',
      'apps-wildcard',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          conditions: [
            ...conditions.filter((c) => c.type !== 'Issuing'),
            {
              type: 'Issuing',
              status: 'True',
              reason: 'ManuallyTriggered',
              message: 'Certificate re-issuance manually triggered',
              lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
            },
          ],
        },
      }),
    ]);
    const second = await eventually(secretSerial, (s) => s !== first, 120_000);
    const renewed = await eventually(
      () => json(['-n', 'traefik', 'get', 'certificate', 'apps-wildcard']),
      (c: Certificate) => ready(c) && (c.status?.revision ?? 0) > (cert.status?.revision ?? 0),
      60_000,
    );
    expect(renewed.status?.revision).toBe((cert.status?.revision ?? 0) + 1);
    const reserved = await eventually(
      () => servedCertificate(ports.websecure, APP_HOST, caPem),
      (c) => c.serialNumber === second,
      180_000,
    );
    figures.renewServedMs = Date.now() - t;
    expect(reserved.serialNumber).not.toBe(served.serialNumber);
    // The same Traefik pod, never restarted.
    const after = (await json(['-n', 'traefik', 'get', 'pods', '-l', 'app=traefik'])).items[0];
    expect(after.metadata.uid).toBe(traefikPod.metadata.uid);
    expect(after.status.containerStatuses[0].restartCount).toBe(0);
  }, 600_000);

  it('destroy leaves nothing of cert-manager in the cluster', async () => {
    const t = Date.now();
    await layer?.destroy();
    destroyed = true;
    figures.destroyMs = Date.now() - t;
    expect(await admin(['get', 'namespaces', '-o', 'name'])).not.toMatch(/cert-manager|namespace\/traefik/);
    const clusterWide = await admin([
      'get',
      'crd,clusterroles,clusterrolebindings,validatingwebhookconfigurations,mutatingwebhookconfigurations',
      '-o',
      'name',
    ]);
    expect(clusterWide).not.toMatch(/cert-manager/);
    const addresses = Object.values(ports);
    const deadline = Date.now() + 90_000;
    let pods = 'x';
    let open: boolean[] = [];
    while (Date.now() < deadline) {
      pods = (await admin(['get', 'pods', '-A', '-o', 'name'])).trim();
      open = await Promise.all(addresses.map((p) => tcpOpen('127.0.0.1', p, 300)));
      if (!pods && !open.some(Boolean)) break;
      await sleep(500);
    }
    expect(pods).toBe('');
    expect(open).toEqual(addresses.map(() => false));
  }, 300_000);
});
