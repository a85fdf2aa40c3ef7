import fs from 'node:fs';
import path from 'node:path';
import { httpOk } from '../daemons/probes.ts';
import { type Daemon, startDaemon } from '../daemons/supervise.ts';
import { NODE_NAME, type Pki } from './certificates.ts';
import { SYSTEM_PATH } from './exec.ts';
import { writeIfChanged } from './layout.ts';

export type KubeletOptions = {
  /** Path to `kubelet`. */
  bin: string;
  dir: string;
  pki: Pki;
  /** Its kubeconfig (client certificate system:node:localhost). */
  kubeconfig: string;
  containerdSocket: string;
  /** Parent cgroup of `kubepods` (created beforehand, see cgroups.ts). */
  cgroupRoot: string;
  port: number;
  healthzPort: number;
};

export function kubeletPaths(dir: string) {
  return {
    config: path.join(dir, 'config.json'),
    /** --root-dir: pod volumes, plugins, checkpoints. */
    root: path.join(dir, 'root'),
    podLogs: path.join(dir, 'pod-logs'),
  };
}

/**
 * The kubelet of node `localhost`: cgroupfs under a cgroup root of our own, swap tolerated,
 * serving on 127.0.0.1 with a certificate from our CA, webhook authentication and authorization
 * (the API server calls it as system:masters for logs and exec), pod logs and volume plugins
 * under its own dir. Eviction thresholds are low: the disk is shared with everything else here.
 */
export function startKubelet(o: KubeletOptions): Promise<Daemon> {
  const p = kubeletPaths(o.dir);
  const serving = o.pki.cert('kubelet-serving');
  writeIfChanged(
    p.config,
    `${JSON.stringify(
      {
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: '127.0.0.1',
        port: o.port,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort: o.healthzPort,
        authentication: {
          anonymous: { enabled: false },
          webhook: { enabled: true },
          x509: { clientCAFile: o.pki.caCert },
        },
        authorization: { mode: 'Webhook' },
        tlsCertFile: serving.cert,
        tlsPrivateKeyFile: serving.key,
        rotateCertificates: false,
        serverTLSBootstrap: false,
        containerRuntimeEndpoint: `unix://${o.containerdSocket}`,
        cgroupDriver: 'cgroupfs',
        cgroupRoot: `/${o.cgroupRoot}`,
        failSwapOn: false,
        podLogsDir: p.podLogs,
        volumePluginDir: path.join(o.dir, 'volume-plugins'),
        clusterDomain: 'cluster.local',
        resolvConf: '/etc/resolv.conf',
        serializeImagePulls: false,
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        evictionHard: {
          'memory.available': '100Mi',
          'nodefs.available': '1%',
          'nodefs.inodesFree': '1%',
          'imagefs.available': '1%',
        },
        // Node status every 10 s: readiness shows within seconds of start.
        nodeStatusUpdateFrequency: '10s',
        shutdownGracePeriod: '0s',
      },
      null,
      2,
    )}\n`,
  );
  return startDaemon({
    name: 'kubelet',
    command: o.bin,
    args: [
      `--config=${p.config}`,
      `--kubeconfig=${o.kubeconfig}`,
      `--root-dir=${p.root}`,
      `--hostname-override=${NODE_NAME}`,
      `--cert-dir=${path.join(o.dir, 'pki')}`,
      '--v=1',
    ],
    configFiles: [p.config, o.kubeconfig],
    env: { PATH: SYSTEM_PATH },
    logFile: path.join(o.dir, 'kubelet.log'),
    ports: { kubelet: o.port, healthz: o.healthzPort },
    ready: () => httpOk({ url: `http://127.0.0.1:${o.healthzPort}/healthz` }),
    readyTimeoutMs: 90_000,
  });
}

/** The kubelet's device-plugin socket: a fixed path, whatever --root-dir says. */
const DEVICE_PLUGIN_SOCKET = '/var/lib/kubelet/device-plugins/kubelet.sock';
/** Where the kubelet links each container's log (a fixed path too). */
const CONTAINER_LOG_LINKS = '/var/log/containers';

/**
 * Removes what a stopped kubelet of the cluster in `clusterDir` left outside it: the links to
 * its containers' logs, and its device-plugin socket with the directories around it unless
 * another kubelet is listening there now (two clusters on one machine share that path).
 */
export function removeKubeletHostFiles(clusterDir: string): string[] {
  const removed: string[] = [];
  let links: string[] = [];
  try {
    links = fs.readdirSync(CONTAINER_LOG_LINKS);
  } catch {
    // none
  }
  for (const link of links) {
    const file = path.join(CONTAINER_LOG_LINKS, link);
    try {
      if (fs.readlinkSync(file).startsWith(`${clusterDir}/`)) {
        fs.rmSync(file, { force: true });
        removed.push(file);
      }
    } catch {
      // not a link
    }
  }
  const listening = fs
    .readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .some((line) => line.endsWith(` ${DEVICE_PLUGIN_SOCKET}`));
  if (!listening && fs.existsSync(DEVICE_PLUGIN_SOCKET)) {
    fs.rmSync(DEVICE_PLUGIN_SOCKET, { force: true });
    removed.push(DEVICE_PLUGIN_SOCKET);
    for (const dir of [path.dirname(DEVICE_PLUGIN_SOCKET), '/var/lib/kubelet', CONTAINER_LOG_LINKS]) {
      try {
        fs.rmdirSync(dir);
        removed.push(dir);
      } catch {
        // not empty, or not there
      }
    }
  }
  return removed;
}
