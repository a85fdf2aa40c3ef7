import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Where untrusted workloads (build steps, tenants' apps) may not send traffic: every private,
 * loopback, link-local (the cloud metadata endpoint 169.254.169.254 among them), shared and
 * multicast range. The public internet and the machine's DNS resolvers stay reachable.
 */
export const DENIED_RANGES = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
] as const;

export type EgressPolicy = {
  /** Chain names derive from it, e.g. "BUILD" → DMCP-BUILD (mangle) and DMCP-BUILD-IN (filter). */
  name: string;
  /** Source range the workloads' addresses come from, e.g. "10.213.0.0/16". */
  source: string;
  /** DNS resolvers the workloads may query (port 53); default: those of /etc/resolv.conf. */
  resolvers?: string[];
};

/**
 * Installs (or refreshes) the firewall rules that contain a range of workload addresses:
 *  - forwarded traffic (mangle FORWARD, evaluated before any filter rule the container
 *    network plugins add) may reach the resolvers on port 53 and the public internet, and is
 *    dropped towards DENIED_RANGES — other tenants, other builds, the machine's own networks;
 *  - traffic to the machine itself (filter INPUT: every service of the product, whatever
 *    address it listens on) is rejected at once.
 * Idempotent and safe to run from several processes: each chain is replaced atomically with
 * iptables-restore, and a jump is added only when missing.
 */
export async function ensureEgressRules(policy: EgressPolicy): Promise<void> {
  const rules = egressRules({
    ...policy,
    resolvers: policy.resolvers ?? systemResolvers(),
    denied: connectedNetworks(),
  });
  await restore(rules.restore);
  for (const j of rules.jumps) await ensureJump(j.table, j.chain, policy.source, j.target);
  // Ports opened with allowHostPort stay open: their chain is consulted first.
  if (await chainExists('filter', `${rules.input}-HOST`))
    await ensureFirstJump(policy.source, `${rules.input}-HOST`);
}

/** A policy's rules, as data: what ensureEgressRules installs, and what a pod's script installs. */
export type EgressRules = {
  /** The policy's chains (mangle `forward`, filter `input`), for `iptables-restore --noflush`. */
  restore: string;
  /** `-s source -j target` jumps into them, from the built-in chains. */
  jumps: { table: 'mangle' | 'filter'; chain: 'FORWARD' | 'INPUT'; target: string }[];
  forward: string;
  input: string;
};

/**
 * The rules of a policy (see ensureEgressRules), given its resolvers and the ranges denied on
 * top of DENIED_RANGES (the networks the machine sits on, a cluster's own ranges).
 */
export function egressRules(policy: EgressPolicy & { resolvers: string[]; denied?: string[] }): EgressRules {
  const forward = `DMCP-${policy.name}`;
  const input = `DMCP-${policy.name}-IN`;
  const denied = [...new Set([...DENIED_RANGES, ...(policy.denied ?? [])])];
  const restore = [
    '*mangle',
    `:${forward} - [0:0]`,
    // Answers on connections made towards the workloads (e.g. Traefik → an app) pass.
    `-A ${forward} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
    ...policy.resolvers.flatMap((r) =>
      ['udp', 'tcp'].map((proto) => `-A ${forward} -d ${r}/32 -p ${proto} --dport 53 -j RETURN`),
    ),
    ...denied.map((range) => `-A ${forward} -d ${range} -j DROP`),
    'COMMIT',
    '*filter',
    `:${input} - [0:0]`,
    `-A ${input} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
    `-A ${input} -p tcp -j REJECT --reject-with tcp-reset`,
    `-A ${input} -j REJECT --reject-with icmp-port-unreachable`,
    'COMMIT',
    '',
  ].join('\n');
  return {
    restore,
    jumps: [
      { table: 'mangle', chain: 'FORWARD', target: forward },
      { table: 'filter', chain: 'INPUT', target: input },
    ],
    forward,
    input,
  };
}

/**
 * The same rules as a POSIX shell script (for an image without Node: the in-cluster BuildKit's
 * init container): the chains replaced atomically, each jump added only when missing, so a pod
 * restarted on a host network adds nothing twice. With `deniedFromEnv`, the addresses in those
 * environment variables (comma- or space-separated, e.g. the downward API's `status.hostIPs`)
 * are denied too, known only where the script runs: an IPv4 address becomes a DROP of its /32;
 * an IPv6 one is skipped (the workloads' range is IPv4: they have no IPv6 route); anything else,
 * or no IPv4 address at all, fails the script, so nothing runs without the rule.
 */
export function egressScript(
  policy: EgressPolicy & { resolvers: string[]; denied?: string[]; deniedFromEnv?: string[] },
): string {
  const rules = egressRules(policy);
  const fromEnv = policy.deniedFromEnv ?? [];
  if (rules.restore.includes("'")) throw new Error('egress rules cannot hold a quote');
  // Those rules go last in the forward chain (after the fixed DROPs, before its COMMIT). Only
  // shell builtins: the image has no other tools.
  const [mangle, rest] = splitAtFirstCommit(rules.restore.trimEnd());
  const restore = fromEnv.length
    ? [
        "denied=''",
        "nl='",
        "'",
        'set -f',
        "IFS=', '",
        `for a in ${fromEnv.map((v) => `\${${v}:-}`).join(' ')}; do`,
        '  case $a in',
        '    *:*) continue ;; # IPv6',
        `    *[!0-9.]*|*..*|.*|*.) echo "egress: not an address: $a" >&2; exit 1 ;;`,
        '  esac',
        '  case $denied in *" $a/32 "*) continue ;; esac # hostIP is in hostIPs too',
        `  denied="$denied-A ${rules.forward} -d $a/32 -j DROP$nl"`,
        'done',
        'unset IFS',
        `[ -n "$denied" ] || { echo "egress: no IPv4 address in ${fromEnv.join(', ')}" >&2; exit 1; }`,
        `{ printf '%s\\n' '${mangle}'; printf '%s' "$denied"; printf '%s\\n' '${rest}'; } |`,
        '  iptables-restore -w 10 --noflush',
      ]
    : ["iptables-restore -w 10 --noflush <<'RULES'", rules.restore.trimEnd(), 'RULES'];
  return [
    '#!/bin/sh',
    'set -eu',
    ...restore,
    ...rules.jumps.map(
      (j) =>
        `iptables -w 10 -t ${j.table} -C ${j.chain} -s ${policy.source} -j ${j.target} 2>/dev/null || ` +
        `iptables -w 10 -t ${j.table} -I ${j.chain} 1 -s ${policy.source} -j ${j.target}`,
    ),
    '',
  ].join('\n');
}

/** The restore text up to (without) its first COMMIT line, and the rest from that line on. */
function splitAtFirstCommit(restore: string): [string, string] {
  const lines = restore.split('\n');
  const at = lines.indexOf('COMMIT');
  return [lines.slice(0, at).join('\n'), lines.slice(at).join('\n')];
}

/** Most ports a policy's host chain keeps: the oldest goes first (several servers share a machine in tests). */
export const MAX_HOST_PORTS = 16;

/**
 * Lets the workloads of policy `name` reach TCP `port` on this machine (e.g. the embedded
 * PostgreSQL for the apps), and nothing else there. Idempotent; the machine-wide chain keeps at
 * most MAX_HOST_PORTS ports.
 */
export async function allowHostPort(
  policy: Pick<EgressPolicy, 'name' | 'source'>,
  port: number,
): Promise<void> {
  const chain = `DMCP-${policy.name}-IN-HOST`;
  await ensureChain('filter', chain);
  // A chain of its own, jumped to from INPUT before the policy's reject chain: rewriting that
  // one (ensureEgressRules, from any server on the machine) leaves the opened ports alone.
  await ensureFirstJump(policy.source, chain);
  const rule = ['-p', 'tcp', '--dport', String(port), '-j', 'ACCEPT'];
  try {
    await iptables(['-t', 'filter', '-C', chain, ...rule]);
    return;
  } catch {}
  await iptables(['-t', 'filter', '-A', chain, ...rule]);
  const rules = (await iptables(['-t', 'filter', '-S', chain])).stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('-A '));
  for (let i = 0; i < rules.length - MAX_HOST_PORTS; i++)
    await iptables(['-t', 'filter', '-D', chain, '1']).catch(() => undefined);
}

/** Takes back allowHostPort (on stop); a port not allowed is fine. */
export async function revokeHostPort(name: string, port: number): Promise<void> {
  const rule = ['-p', 'tcp', '--dport', String(port), '-j', 'ACCEPT'];
  await iptables(['-t', 'filter', '-D', `DMCP-${name}-IN-HOST`, ...rule]).catch(() => undefined);
}

async function chainExists(table: string, chain: string): Promise<boolean> {
  return iptables(['-t', table, '-S', chain]).then(
    () => true,
    () => false,
  );
}

/** `-s source -j target` as INPUT's first rule (moved there when it sits further down). */
async function ensureFirstJump(source: string, target: string) {
  const rule = ['-s', source, '-j', target];
  const { stdout } = await iptables(['-t', 'filter', '-S', 'INPUT']);
  const first = stdout.split('\n').find((l) => l.startsWith('-A '));
  if (first === `-A INPUT ${rule.join(' ')}`) return;
  for (let i = 0; i < 10; i++) {
    try {
      await iptables(['-t', 'filter', '-D', 'INPUT', ...rule]);
    } catch {
      break; // no copy left
    }
  }
  await iptables(['-t', 'filter', '-I', 'INPUT', '1', ...rule]);
}

async function ensureChain(table: string, chain: string) {
  try {
    await iptables(['-t', table, '-N', chain]);
  } catch {} // it exists
}

/** The rules of a policy as iptables prints them (`-S`), for audits and tests. */
export async function listEgressRules(name: string): Promise<{ forward: string[]; input: string[] }> {
  const list = async (table: string, chain: string) =>
    (await iptables(['-t', table, '-S', chain])).stdout.trim().split('\n');
  return {
    forward: await list('mangle', `DMCP-${name}`),
    input: await list('filter', `DMCP-${name}-IN`),
  };
}

/** IPv4 nameservers of /etc/resolv.conf. */
export function systemResolvers(file = '/etc/resolv.conf'): string[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return [...text.matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1] as string);
}

/**
 * The networks this machine sits on directly (routes without a gateway, e.g. the LAN of a
 * public-looking address), from /proc/net/route: as off-limits as the private ranges.
 */
export function connectedNetworks(file = '/proc/net/route'): string[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const ip = (hex: string) =>
    [0, 1, 2, 3].map((i) => Number.parseInt(hex.slice(6 - 2 * i, 8 - 2 * i), 16)).join('.');
  const nets: string[] = [];
  for (const line of text.trim().split('\n').slice(1)) {
    const [, dest, gateway, , , , , mask] = line.trim().split(/\s+/);
    if (!dest || !mask || gateway !== '00000000' || dest === '00000000') continue;
    const bits = ip(mask)
      .split('.')
      .reduce((n, o) => n + (Number(o).toString(2).match(/1/g)?.length ?? 0), 0);
    if (bits < 32) nets.push(`${ip(dest)}/${bits}`);
  }
  return nets;
}

async function ensureJump(table: string, chain: string, source: string, target: string) {
  const rule = ['-s', source, '-j', target];
  try {
    await iptables(['-t', table, '-C', chain, ...rule]);
  } catch {
    await iptables(['-t', table, '-I', chain, '1', ...rule]);
  }
}

function iptables(args: string[]) {
  return run('iptables', ['-w', '10', ...args], { env: { PATH: process.env.PATH ?? '/usr/sbin:/sbin' } });
}

function restore(rules: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('iptables-restore', ['-w', '10', '--noflush'], {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/sbin' },
    });
    let stderr = '';
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`iptables-restore failed (${code}): ${stderr.trim()}`)),
    );
    child.stdin.end(rules);
  });
}
