import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway Debian target for the Ansible roles (platform/ansible-target.test.ts): the cached
 * debootstrap root scripts/setup-ansible.sh makes (Python and the SSH server, as on a cloud image),
 * unpacked into a temporary folder and run as a podman container with a network namespace of its
 * own (podman's bridge: the roles apt-install from the Debian mirror). Ansible reaches it the
 * way Pulumi reaches a node, over SSH with a key, through `podman exec -i <name> sshd -i` as the
 * ProxyCommand: no port is opened anywhere. Never the test machine itself: the roles' iptables
 * rules land in the container's network namespace; `deploy_mcp_in_container` keeps the handlers
 * that would load kernel modules or set sysctls (the machine's, not the container's) from running.
 */

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
export const ANSIBLE_DIR = path.join(ROOT, 'ansible');
export const ANSIBLE_PLAYBOOK = path.join(ROOT, '.tools/ansible/bin/ansible-playbook');
export const TARGET_TARBALL = path.join(ROOT, '.tools/ansible-target.tar');

/** Test-only settings the roles get (inventory host vars, over group_vars/all.yml). */
export type TargetVars = Record<string, unknown>;

export type PlaybookRun = { output: string; recap: Recap };
export type Recap = { ok: number; changed: number; unreachable: number; failed: number };

export type Target = {
  /** The container's name (unique per run). */
  name: string;
  /** The target's root filesystem, on this machine. */
  rootfs: string;
  /** The container's main process, for its network namespace (/proc/<pid>/ns/net). */
  pid: number;
  /** The public half of the key root logs in with (and the admin user the test asks for may use). */
  publicKey: string;
  /** Runs ansible-playbook with the roles given, on the target. */
  apply(roles: string[], vars: TargetVars): Promise<PlaybookRun>;
  /** Runs a command on the target over SSH, as `user`; rejects when ssh exits non-zero. */
  ssh(user: string, command: string, extraOptions?: string[]): Promise<{ stdout: string; stderr: string }>;
  /** Removes the container and every file the target made. */
  remove(): Promise<void>;
};

/** Numbers of the PLAY RECAP line for `host`; throws when there is none. */
export function parseRecap(output: string, host: string): Recap {
  const m = output.match(
    new RegExp(`^${host}\\s+:\\s+ok=(\\d+)\\s+changed=(\\d+)\\s+unreachable=(\\d+)\\s+failed=(\\d+)`, 'm'),
  );
  if (!m) throw new Error(`no PLAY RECAP line for ${host} in:\n${output}`);
  const [ok, changed, unreachable, failed] = m.slice(1).map(Number) as [number, number, number, number];
  return { ok, changed, unreachable, failed };
}

export async function startTarget(): Promise<Target> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ansible-target-'));
  const name = `deploy-mcp-ansible-target-${randomBytes(4).toString('hex')}`;
  const rootfs = path.join(dir, 'rootfs');
  let started = false;
  const remove = async () => {
    if (started)
      await run('podman', ['rm', '--force', '--time', '0', name], { timeout: 60_000 }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    mkdirSync(rootfs);
    await run('tar', ['-xf', TARGET_TARBALL, '-C', rootfs], { timeout: 120_000 });
    // A host key of its own per run (the cached root's are shared), pinned in known_hosts.
    for (const f of ['rsa', 'ecdsa', 'ed25519'].flatMap((t) => [
      `ssh_host_${t}_key`,
      `ssh_host_${t}_key.pub`,
    ]))
      rmSync(path.join(rootfs, 'etc/ssh', f), { force: true });
    const hostKey = path.join(rootfs, 'etc/ssh/ssh_host_ed25519_key');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', hostKey]);
    const hostPublic = readFileSync(`${hostKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(path.join(dir, 'known_hosts'), `target ${hostPublic}\n`);
    // The client key: root's (Ansible's), and the admin user's the test asks for.
    const key = path.join(dir, 'id_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'deploy-mcp-test', '-f', key]);
    const publicKey = readFileSync(`${key}.pub`, 'utf8').trim();
    mkdirSync(path.join(rootfs, 'root/.ssh'), { recursive: true, mode: 0o700 });
    writeFileSync(path.join(rootfs, 'root/.ssh/authorized_keys'), `${publicKey}\n`, { mode: 0o600 });
    // sshd's privilege separation directory (the init script or systemd makes it on a node).
    mkdirSync(path.join(rootfs, 'run/sshd'), { recursive: true });
    chmodSync(path.join(rootfs, 'run/sshd'), 0o755);

    started = true;
    await run(
      'podman',
      [
        'run',
        '--detach',
        '--name',
        name,
        '--label',
        'deploy-mcp.test=ansible-target',
        '--hostname',
        'ansible-target',
        '--network',
        'bridge',
        // iptables in its own network namespace; nothing else beyond podman's defaults.
        '--cap-add',
        'NET_ADMIN',
        '--init',
        // This machine's processes lack CAP_SYS_RESOURCE (core/container-engine.ts DEFAULT_ULIMITS).
        '--ulimit',
        'nofile=20000:20000',
        '--ulimit',
        'nproc=4096:4096',
        '--rootfs',
        rootfs,
        'sleep',
        'infinity',
      ],
      { timeout: 120_000 },
    );
    const { stdout: pidText } = await run('podman', ['inspect', '--format', '{{.State.Pid}}', name]);
    const pid = Number(pidText.trim());

    const sshOptions = [
      '-o',
      'ConnectTimeout=60',
      '-o',
      'HostKeyAlias=target',
      '-o',
      `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `ProxyCommand=podman exec -i ${name} /usr/sbin/sshd -i`,
    ];
    const env = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: dir,
      ANSIBLE_CONFIG: path.join(ANSIBLE_DIR, 'ansible.cfg'),
      ANSIBLE_ROLES_PATH: path.join(ANSIBLE_DIR, 'roles'),
      ANSIBLE_NOCOLOR: '1',
      // Each connection starts `podman exec` and an sshd: slow on a busy machine, never an error.
      ANSIBLE_TIMEOUT: '60',
      ANSIBLE_SSH_RETRIES: '3',
    };

    const apply = async (roles: string[], vars: TargetVars): Promise<PlaybookRun> => {
      // A playbook next to a link to ansible/group_vars, so the roles get the real defaults.
      symlinkSync(path.join(ANSIBLE_DIR, 'group_vars'), path.join(dir, 'group_vars'));
      const playbook = path.join(dir, 'playbook.json');
      writeFileSync(
        playbook,
        JSON.stringify([{ name: 'The node OS on a throwaway target', hosts: 'target', roles }]),
      );
      const inventory = path.join(dir, 'inventory.json');
      const host = {
        ansible_host: 'target',
        ansible_user: 'root',
        ansible_ssh_private_key_file: key,
        ansible_ssh_common_args: sshOptions.map((o) => (o.includes(' ') ? `"${o}"` : o)).join(' '),
        deploy_mcp_in_container: true,
        ...vars,
      };
      writeFileSync(inventory, JSON.stringify({ all: { hosts: { target: host } } }));
      try {
        const { stdout, stderr } = await run(ANSIBLE_PLAYBOOK, ['-i', inventory, playbook], {
          cwd: dir,
          env,
          timeout: 480_000,
          maxBuffer: 16 * 1024 * 1024,
        });
        const output = `${stdout}${stderr}`;
        return { output, recap: parseRecap(output, 'target') };
      } catch (e) {
        const err = e as { stdout?: string; stderr?: string; message: string };
        throw new Error(`ansible-playbook failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
      } finally {
        rmSync(path.join(dir, 'group_vars'), { force: true });
      }
    };

    const ssh = (user: string, command: string, extraOptions: string[] = []) =>
      run(
        'ssh',
        ['-i', key, '-o', 'BatchMode=yes', ...sshOptions, ...extraOptions, `${user}@target`, command],
        { timeout: 120_000, env: { PATH: env.PATH, HOME: dir } },
      );

    return { name, rootfs, pid, publicKey, apply, ssh, remove };
  } catch (e) {
    await remove();
    throw e;
  }
}
