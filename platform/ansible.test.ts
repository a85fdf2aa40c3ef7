import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { nodeVars } from './cloud/k3s.ts';
import type { Node } from './cloud/servers.ts';
import { testConfig } from './test-config.ts';

const ANSIBLE = path.resolve(import.meta.dirname, '../ansible');
const ANSIBLE_PLAYBOOK = path.resolve(import.meta.dirname, '../.tools/ansible/bin/ansible-playbook');
const ANSIBLE_LINT = path.resolve(import.meta.dirname, '../.tools/ansible/bin/ansible-lint');
const PLAYBOOKS = ['site.yml', 'node.yml', 'add-run-node.yml', 'upgrade-k3s.yml'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}
const yamlFiles = files(ANSIBLE).filter((f) => /\.ya?ml$/.test(f));
const roleText = (role: string) =>
  files(path.join(ANSIBLE, 'roles', role))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');

/** Every role a playbook or task file names (roles: lists and include_role). */
function referencedRoles(node: unknown, found: { name: string; tasksFrom?: string }[] = []) {
  if (Array.isArray(node)) for (const n of node) referencedRoles(n, found);
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (Array.isArray(o.roles))
      for (const r of o.roles)
        found.push({ name: typeof r === 'string' ? r : String((r as { role: string }).role) });
    const include = o['ansible.builtin.include_role'] as { name: string; tasks_from?: string } | undefined;
    if (include)
      found.push({ name: include.name, ...(include.tasks_from ? { tasksFrom: include.tasks_from } : {}) });
    for (const v of Object.values(o)) referencedRoles(v, found);
  }
  return found;
}

describe('ansible/', () => {
  it('has the three playbooks and the six roles, every YAML file parsing', () => {
    for (const p of PLAYBOOKS) expect(existsSync(path.join(ANSIBLE, p))).toBe(true);
    expect(readdirSync(path.join(ANSIBLE, 'roles')).sort()).toEqual([
      'common',
      'firewall',
      'k3s_agent',
      'k3s_server',
      'registry_client',
      'vswitch',
    ]);
    expect(yamlFiles.length).toBeGreaterThan(20);
    for (const f of yamlFiles) expect(() => parse(readFileSync(f, 'utf8')), f).not.toThrow();
  });

  it('names only roles and task files that exist', () => {
    const refs = yamlFiles.flatMap((f) => referencedRoles(parse(readFileSync(f, 'utf8'))));
    expect(new Set(refs.map((r) => r.name))).toEqual(
      new Set(['common', 'firewall', 'vswitch', 'registry_client', 'k3s_server', 'k3s_agent']),
    );
    for (const r of refs) {
      expect(
        existsSync(path.join(ANSIBLE, 'roles', r.name, 'tasks', `${r.tasksFrom ?? 'main'}.yml`)),
        r.name,
      ).toBe(true);
    }
  });

  it('uses every variable Pulumi passes a node (platform/cloud/k3s.ts), and the token from the environment', () => {
    const node = (pool: 'ctrl' | 'run', privateIp: string) =>
      ({ pool, name: `${pool}-1`, privateIp }) as Node;
    const ctrl = node('ctrl', '10.0.1.10');
    const keys = [
      ...Object.keys(nodeVars(testConfig(), ctrl, ctrl, '10.0.1.20:5000')),
      ...Object.keys(nodeVars(testConfig(), node('run', '10.0.1.100'), ctrl, '10.0.1.20:5000')),
      'k3s_tls_san',
    ];
    const roles = ['k3s_server', 'k3s_agent', 'registry_client'].map(roleText).join('\n');
    const nodeYml = readFileSync(path.join(ANSIBLE, 'node.yml'), 'utf8');
    for (const key of new Set(keys)) expect(`${roles}\n${nodeYml}`, key).toContain(key);
    expect(readFileSync(path.join(ANSIBLE, 'group_vars/all.yml'), 'utf8')).toContain(
      `k3s_token: "{{ lookup('ansible.builtin.env', 'K3S_TOKEN') }}"`,
    );
    expect(roleText('k3s_server')).toMatch(
      /content: "\{\{ k3s_token \}\}\\n"\n\s+mode: "0600"\n\s+no_log: true/,
    );
  });

  it('firewall: registry from the private network (and pods) only, API also from admins, metadata closed to pods', () => {
    const rules = readFileSync(path.join(ANSIBLE, 'roles/firewall/templates/deploy-mcp.rules.j2'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('-A'));
    const port = (p: number) => rules.filter((l) => l.includes(`--dport ${p} `));
    expect(port(5000)).toEqual([
      '-A DEPLOY-MCP-INPUT -p tcp --dport 5000 -s {{ private_network }} -j RETURN',
      '-A DEPLOY-MCP-INPUT -p tcp --dport 5000 -s {{ pod_cidr }} -j RETURN',
      '-A DEPLOY-MCP-INPUT -p tcp --dport 5000 -j DROP',
    ]);
    expect(port(6443).at(-1)).toBe('-A DEPLOY-MCP-INPUT -p tcp --dport 6443 -j DROP');
    expect(port(6443).map((l) => l.match(/-s (\S+ \S+ \S+)/)?.[1])).toEqual([
      '{{ private_network }}',
      '{{ pod_cidr }}',
      '{{ admin_cidr }}',
      undefined,
    ]);
    expect(rules).toContain(
      '-A DEPLOY-MCP-FORWARD -d {{ metadata_address }}/32 -j REJECT --reject-with icmp-port-unreachable',
    );
    expect(readFileSync(path.join(ANSIBLE, 'roles/firewall/defaults/main.yml'), 'utf8')).toContain(
      'metadata_address: 169.254.169.254',
    );
  });

  it('vswitch: a VLAN interface with MTU 1400', () => {
    expect(
      parse(readFileSync(path.join(ANSIBLE, 'roles/vswitch/defaults/main.yml'), 'utf8')).vswitch_mtu,
    ).toBe(1400);
    expect(readFileSync(path.join(ANSIBLE, 'roles/vswitch/templates/vswitch.j2'), 'utf8')).toMatch(
      /vlan-raw-device \{\{ vswitch_parent \}\}\n\s+mtu \{\{ vswitch_mtu \}\}/,
    );
  });

  it.skipIf(!existsSync(ANSIBLE_PLAYBOOK))(
    'passes ansible-playbook --syntax-check (ansible-core in .tools/ansible)',
    () => {
      const out = execFileSync(ANSIBLE_PLAYBOOK, ['--syntax-check', ...PLAYBOOKS], {
        cwd: ANSIBLE,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: process.env.HOME ?? '/tmp',
          ANSIBLE_CONFIG: 'ansible.cfg',
        },
        encoding: 'utf8',
      });
      for (const p of PLAYBOOKS) expect(out).toContain(`playbook: ${p}`);
    },
  );

  it.skipIf(!existsSync(ANSIBLE_LINT))(
    'passes ansible-lint (production profile; .ansible-lint says what it skips and why)',
    () => {
      // ansible-lint writes a cache folder into the project: lint a copy.
      const dir = mkdtempSync(path.join(os.tmpdir(), 'ansible-lint-'));
      try {
        cpSync(ANSIBLE, dir, { recursive: true });
        const env = {
          PATH: `${path.dirname(ANSIBLE_LINT)}:/usr/bin:/bin`,
          HOME: dir,
          ANSIBLE_HOME: dir,
          ANSIBLE_CONFIG: 'ansible.cfg',
        };
        const run = spawnSync(ANSIBLE_LINT, ['--nocolor'], { cwd: dir, env, encoding: 'utf8' });
        expect(run.stderr + run.stdout).toMatch(/Passed: 0 failure\(s\), 0 warning\(s\)/);
        expect(run.status).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
