import fs from 'node:fs';
import path from 'node:path';

const CGROUP_FS = '/sys/fs/cgroup';

/**
 * The mounted cgroup hierarchies: the unified one alone on cgroup v2; on v1 or a hybrid (this
 * machine), one directory per controller set plus the named and unified ones.
 */
export function cgroupHierarchies(): string[] {
  if (fs.existsSync(path.join(CGROUP_FS, 'cgroup.controllers'))) return [CGROUP_FS];
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => {
      const [before, after] = line.split(' - ');
      const fstype = after?.split(' ')[0];
      const mountPoint = before?.split(' ')[4];
      return fstype === 'cgroup' || fstype === 'cgroup2' ? mountPoint : undefined;
    })
    .filter((m): m is string => m?.startsWith(`${CGROUP_FS}/`) === true);
}

/**
 * Creates the cgroup the kubelet puts `kubepods` under (its `cgroupRoot`), in every hierarchy:
 * the kubelet refuses a root that does not exist, and a cluster of our own then never touches
 * the machine's top-level cgroups. cpuset needs its CPUs and memory nodes set before use.
 */
export function ensureCgroupRoot(name: string): void {
  for (const hierarchy of cgroupHierarchies()) {
    const dir = path.join(hierarchy, name);
    fs.mkdirSync(dir, { recursive: true });
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      const own = path.join(dir, file);
      if (!fs.existsSync(own) || fs.readFileSync(own, 'utf8').trim() !== '') continue;
      fs.writeFileSync(own, fs.readFileSync(path.join(hierarchy, file), 'utf8').trim());
    }
  }
}

/**
 * Removes the cgroup `name` and everything below it (kubepods, QoS classes, pods, containers)
 * from every hierarchy, deepest first. Returns the directories that could not be removed
 * (still holding processes).
 */
export function removeCgroupRoot(name: string): string[] {
  const left: string[] = [];
  for (const hierarchy of cgroupHierarchies()) removeTree(path.join(hierarchy, name), left);
  return left;
}

/** Pids in the cgroup `name` or below it, in any hierarchy. */
export function cgroupPids(name: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    try {
      for (const p of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n'))
        if (p) pids.add(Number(p));
    } catch {
      // not readable
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
  };
  for (const hierarchy of cgroupHierarchies()) walk(path.join(hierarchy, name));
  return [...pids];
}

function removeTree(dir: string, left: string[]) {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeTree(path.join(dir, e.name), left);
  try {
    fs.rmdirSync(dir);
  } catch {
    left.push(dir);
  }
}
