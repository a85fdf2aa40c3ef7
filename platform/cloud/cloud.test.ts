import { describe, expect, it } from 'vitest';
import { isSecret, one, type Registered, runWithMocks } from '../../tenant-stacks/kubernetes/pulumi-mocks.ts';
import { platformProgram } from '../program.ts';
import { testConfig } from '../test-config.ts';

type Rule = { direction: string; protocol: string; port: string; sourceIps: string[] };

const of = (resources: Registered[], type: string) => resources.filter((r) => r.type === type);
const firewallOf = (resources: Registered[], pool: string) =>
  one(resources, 'hcloud:index/firewall:Firewall', `fw-${pool}`);
const rulesOf = (fw: Registered) => fw.inputs.rules as Rule[];
const openPorts = (fw: Registered) => Object.fromEntries(rulesOf(fw).map((r) => [r.port, r.sourceIps]));

describe('platform cloud layer (pulumi.runtime.setMocks)', () => {
  it('makes the private network 10.0.0.0/16 with a cloud subnet and, given a vSwitch, a vSwitch subnet', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    expect(one(resources, 'hcloud:index/network:Network').inputs.ipRange).toBe('10.0.0.0/16');
    const subnets = of(resources, 'hcloud:index/networkSubnet:NetworkSubnet').map((r) => r.inputs);
    expect(subnets).toEqual([
      expect.objectContaining({ type: 'cloud', ipRange: '10.0.1.0/24', networkZone: 'eu-central' }),
      expect.objectContaining({ type: 'vswitch', ipRange: '10.0.2.0/24', vswitchId: 4242 }),
    ]);
    const without = await runWithMocks(platformProgram(testConfig({ vswitchId: undefined })));
    expect(
      of(without.resources, 'hcloud:index/networkSubnet:NetworkSubnet').map((r) => r.inputs.type),
    ).toEqual(['cloud']);
  });

  it('opens exactly: SSH from the admin CIDR everywhere, the API to private + admins, the registry to private, 80/443 on run', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const ssh = ['203.0.113.0/24'];
    expect(openPorts(firewallOf(resources, 'ctrl'))).toEqual({
      '22': ssh,
      '6443': ['10.0.0.0/16', '203.0.113.0/24'],
    });
    expect(openPorts(firewallOf(resources, 'ops'))).toEqual({ '22': ssh, '5000': ['10.0.0.0/16'] });
    expect(openPorts(firewallOf(resources, 'build'))).toEqual({ '22': ssh });
    expect(openPorts(firewallOf(resources, 'run'))).toEqual({
      '22': ssh,
      '80': ['0.0.0.0/0', '::/0'],
      '443': ['0.0.0.0/0', '::/0'],
    });
    const all = of(resources, 'hcloud:index/firewall:Firewall');
    expect(all).toHaveLength(4);
    for (const fw of all)
      for (const r of rulesOf(fw)) expect([r.direction, r.protocol]).toEqual(['in', 'tcp']);
    // No rule anywhere makes the registry or the API public, and only run nodes serve 80/443.
    const rules = all.flatMap((fw) => rulesOf(fw).map((r) => ({ pool: fw.name, ...r })));
    expect(rules.filter((r) => r.port === '5000').flatMap((r) => r.sourceIps)).toEqual(['10.0.0.0/16']);
    expect(rules.filter((r) => r.sourceIps.includes('0.0.0.0/0')).map((r) => [r.pool, r.port])).toEqual([
      ['fw-run', '80'],
      ['fw-run', '443'],
    ]);
  });

  it('applies each firewall to the servers labelled with its pool', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    for (const pool of ['ctrl', 'ops', 'build', 'run']) {
      expect(firewallOf(resources, pool).inputs.applyTos).toEqual([{ labelSelector: `pool=${pool}` }]);
    }
  });

  it('makes the servers of each pool with its count, type, label and fixed private address', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const servers = of(resources, 'hcloud:index/server:Server').map((r) => ({
      name: r.inputs.name,
      type: r.inputs.serverType,
      labels: r.inputs.labels,
      ip: (r.inputs.networks as { ip: string }[])[0]?.ip,
    }));
    expect(servers).toEqual([
      { name: 'ctrl-1', type: 'cx32', labels: { 'deploy-mcp': 'platform', pool: 'ctrl' }, ip: '10.0.1.10' },
      { name: 'ops-1', type: 'cx42', labels: { 'deploy-mcp': 'platform', pool: 'ops' }, ip: '10.0.1.20' },
      {
        name: 'build-1',
        type: 'cpx51',
        labels: { 'deploy-mcp': 'platform', pool: 'build' },
        ip: '10.0.1.30',
      },
      {
        name: 'build-2',
        type: 'cpx51',
        labels: { 'deploy-mcp': 'platform', pool: 'build' },
        ip: '10.0.1.31',
      },
      { name: 'run-1', type: 'cx42', labels: { 'deploy-mcp': 'platform', pool: 'run' }, ip: '10.0.1.100' },
      { name: 'run-2', type: 'cx42', labels: { 'deploy-mcp': 'platform', pool: 'run' }, ip: '10.0.1.101' },
      { name: 'run-3', type: 'cx42', labels: { 'deploy-mcp': 'platform', pool: 'run' }, ip: '10.0.1.102' },
    ]);
  });

  it('joins k3s with the pool labels and taints: ops and build NoSchedule, agents to the first ctrl node', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const joins = of(resources, 'command:local:Command');
    expect(joins.map((j) => j.name)).toEqual([
      'k3s-ctrl-1',
      'k3s-ops-1',
      'k3s-build-1',
      'k3s-build-2',
      'k3s-run-1',
      'k3s-run-2',
      'k3s-run-3',
    ]);
    const vars = (name: string) => {
      const create = String(one(resources, 'command:local:Command', name).inputs.create);
      const json = create.match(/-e '(.*)'$/)?.[1];
      if (!json) throw new Error(`no extra vars in ${create}`);
      expect(create).toMatch(/^ansible-playbook -i .*, -u root node\.yml -e /);
      return JSON.parse(json) as Record<string, unknown>;
    };
    expect(vars('k3s-ctrl-1')).toMatchObject({
      k3s_role: 'server',
      k3s_node_name: 'ctrl-1',
      k3s_cluster_init: true,
      k3s_server_url: '',
      k3s_node_ip: '10.0.1.10',
      k3s_node_labels: ['deploy-mcp.dev/pool=ctrl'],
      k3s_node_taints: [],
      registry_host: '10.0.1.20:5000',
    });
    expect(vars('k3s-ops-1')).toMatchObject({
      k3s_role: 'agent',
      k3s_cluster_init: false,
      k3s_server_url: 'https://10.0.1.10:6443',
      k3s_node_labels: ['deploy-mcp.dev/pool=ops'],
      k3s_node_taints: ['deploy-mcp.dev/pool=ops:NoSchedule'],
    });
    expect(vars('k3s-build-2')).toMatchObject({
      k3s_role: 'agent',
      k3s_node_taints: ['deploy-mcp.dev/pool=build:NoSchedule'],
    });
    expect(vars('k3s-run-3')).toMatchObject({
      k3s_role: 'agent',
      k3s_node_taints: [],
      k3s_node_ip: '10.0.1.102',
    });
    // The token never appears in the command line (visible in the state and in ps), only in the
    // environment, as a secret.
    for (const j of joins) {
      expect(String(j.inputs.create)).not.toContain('k3s-token');
      // A secret inside an object makes the whole object a secret.
      const env = j.inputs.environment;
      expect(isSecret(env) && env.value).toEqual({
        K3S_TOKEN: 'k3s-token',
        ANSIBLE_HOST_KEY_CHECKING: 'False',
      });
    }
  });

  it('balances *.<apps domain> over exactly the run nodes, health-checked, and points api/mcp/git at them', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const monitor = one(resources, 'cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor');
    expect(monitor.inputs).toMatchObject({ type: 'http', port: 80, path: '/ping', expectedCodes: '200' });
    const pool = one(resources, 'cloudflare:index/loadBalancerPool:LoadBalancerPool');
    expect((pool.inputs.origins as { name: string }[]).map((o) => o.name)).toEqual([
      'run-1',
      'run-2',
      'run-3',
    ]);
    expect(pool.inputs.monitor).toBe(`run-nodes-0a1b2c3d`);
    const lb = one(resources, 'cloudflare:index/loadBalancer:LoadBalancer');
    expect(lb.inputs).toMatchObject({
      name: '*.apps.example.com',
      zoneId: 'zone',
      proxied: true,
      defaultPools: ['run-nodes-0a1b2c3d'],
      fallbackPool: 'run-nodes-0a1b2c3d',
    });
    const records = of(resources, 'cloudflare:index/dnsRecord:DnsRecord').map((r) => [
      r.name,
      r.inputs.name,
      r.inputs.proxied,
    ]);
    expect(records).toHaveLength(9);
    expect(new Set(records.map((r) => r[1]))).toEqual(
      new Set(['api.deploy.example.com', 'mcp.deploy.example.com', 'git.deploy.example.com']),
    );
    expect(records.every((r) => r[2] === true && /-run-\d$/.test(String(r[0])))).toBe(true);
  });

  it('uses explicit providers with the tokens as secrets, and reads the kubeconfig as a secret', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const hetzner = one(resources, 'pulumi:providers:hcloud');
    expect(isSecret(hetzner.inputs.token)).toBe(true);
    const cf = one(resources, 'pulumi:providers:cloudflare');
    expect(isSecret(cf.inputs.apiToken)).toBe(true);
    for (const r of resources.filter((r) => r.type.startsWith('hcloud:')))
      expect(r.provider).toMatch(/::hetzner::/);
    for (const r of resources.filter((r) => r.type.startsWith('cloudflare:')))
      expect(r.provider).toMatch(/::cloudflare::/);
    const read = one(resources, 'command:remote:Command', 'kubeconfig');
    expect(read.inputs.create).toBe('cat /etc/rancher/k3s/k3s.yaml');
    const connection = read.inputs.connection;
    expect(isSecret(connection) && connection.value).toMatchObject({
      user: 'root',
      privateKey: expect.any(String),
    });
  });
});
