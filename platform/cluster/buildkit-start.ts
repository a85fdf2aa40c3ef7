/**
 * What a killed buildkitd leaves of its steps' networks, and the start that removes it.
 *
 * The CNI `ptp` plugin masquerades each step's address with a `nat` chain of its own
 * (`CNI-<hash>`, its rules commented `name: "<network>" id: "<container id>"`) and a
 * `POSTROUTING -s <address>/32` jump into it. It removes both on a CNI DEL, and only while the
 * step's network namespace still exists. A killed buildkitd makes no DEL, and its namespaces go
 * with its container, so the rules stay: in the BuildKit pod's network namespace (which the pause
 * container keeps across container restarts), or on the one-node cluster, where BuildKit is on the
 * host network, on the host, one set per step that ever ran there. The IPAM leases need nothing:
 * host-local keeps them in the container's own filesystem (`/var/lib/cni/networks/<network>`, no
 * volume), which a restarted container does not inherit.
 */

/** The leading octets of `subnet`'s addresses, e.g. 10.215.0.0/16 → `10.215.` (a glob's literal part). */
function subnetPrefix(subnet: string): string {
  const [address, bits] = subnet.split('/');
  const octets = Number(bits) / 8;
  if (!address || !Number.isInteger(octets) || octets < 1 || octets > 3)
    throw new Error(`a step subnet must be a /8, /16 or /24, not ${subnet}`);
  return `${address.split('.').slice(0, octets).join('.')}.`;
}

/**
 * A POSIX shell script (shell builtins, iptables and iptables-restore only: the BuildKit
 * image has nothing else) that removes the masquerading rules of the CNI network `network` whose
 * source is in `subnet`: each `POSTROUTING` jump into a `CNI-` chain commented with that network's
 * name, and every `CNI-` chain holding a rule with that comment, flushed and deleted, in one
 * atomic `iptables-restore`. Nothing else is touched: not the rules of other networks or ranges
 * (the product's own buildkitd, 10.213.0.0/16, and its apps, 10.214.0.0/16, share the host on
 * one node), nor the egress chains. Idempotent; bounded by the rules present.
 */
export function staleStepRulesScript(network: string, subnet: string): string {
  if (!/^[a-z0-9-]+$/.test(network)) throw new Error(`unexpected CNI network name ${network}`);
  const tag = `name: \\"${network}\\" id: \\"`;
  return [
    `# The masquerading rules of the steps of ${network} (${subnet}) a killed buildkitd left.`,
    "changes=''",
    "chains=' '",
    "nl='",
    "'",
    'rules=$(iptables -w 10 -t nat -S)',
    'while IFS= read -r line; do',
    '  case $line in',
    // The jump: removed as `iptables -S` printed it (iptables-restore reads the same quoting).
    `    '-A POSTROUTING -s ${subnetPrefix(subnet)}'*'/32 -m comment --comment "${tag}'*'" -j CNI-'*)`,
    `      changes="$changes-D \${line#-A }$nl"`,
    `      chain=\${line##* -j }`,
    '      ;;',
    `    '-A CNI-'*' -m comment --comment "${tag}'*) chain=\${line#-A }; chain=\${chain%% *} ;;`,
    '    *) continue ;;',
    '  esac',
    '  case $chain in',
    '    *[!A-Za-z0-9-]*) echo "stale step rules: unexpected chain $chain" >&2; exit 1 ;;',
    '  esac',
    '  case $chains in',
    '    *" $chain "*) ;;',
    '    *) chains="$chains$chain " ;;',
    '  esac',
    'done <<EOF',
    '$rules',
    'EOF',
    'set -f',
    'for chain in $chains; do changes="$changes-F $chain$nl-X $chain$nl"; done',
    'set +f',
    'if [ -n "$changes" ]; then',
    '  printf \'*nat\\n%sCOMMIT\\n\' "$changes" | iptables-restore -w 10 --noflush',
    `  echo "removed the masquerading rules of ${network} that a previous buildkitd left:$chains"`,
    'fi',
  ].join('\n');
}

/**
 * buildkitd's start in the pod (the container's command; buildkitd's arguments follow): first
 * the masquerading rules of the steps a previous buildkitd left (staleStepRulesScript), then
 * buildkitd itself in its place. Runs at every start of the container, a restart after a kill
 * included (the init container, which sets the egress rules, runs once per pod).
 */
export function buildkitStartScript(network: string, subnet: string): string {
  return ['#!/bin/sh', 'set -eu', staleStepRulesScript(network, subnet), 'exec buildkitd "$@"', ''].join(
    '\n',
  );
}
