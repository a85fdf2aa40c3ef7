import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/client.ts';
import { invalidInput, notFound } from '../core/errors.ts';
import { resolveProject } from '../core/projects.ts';
import { getUserByEmail } from '../core/users.ts';
import { diffStates, type ResourceChange } from '../tenant-stacks/audit.ts';
import { stackJournal, tenantStackRunner } from '../tenant-stacks/from-config.ts';
import { AUDIT_USAGE, openSecretBox, stackUpdates } from './audit.ts';

/** What `deploy-mcp audit <name> --resource` reports (`--json` prints exactly this). */
export type ResourceAuditReport = {
  resource: {
    id: string;
    name: string;
    project: string;
    owner: string;
    type: string;
    size: string;
    region: string;
    status: string;
    stackName: string | null;
    credentialVersion: number;
    createdAt: string;
    deletedAt: string | null;
  };
  stack: 'live' | 'removed' | 'absent';
  /** Newest first; each with what it changed since the update before it (secrets as fingerprints). */
  history: {
    version: number;
    kind: string;
    result: string;
    startTime: string;
    resourceChanges: Record<string, number>;
    stateKept: boolean;
    changes: ResourceChange[] | null;
  }[];
};

/**
 * A resource's stack updates and what each changed, from the backend and the journal (like a
 * service's audit): read-only, and it includes deleted resources. Values of secrets (passwords,
 * the admin URL) appear only as keyed fingerprints.
 */
export async function auditResource(config: Config, args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      user: { type: 'string' },
      project: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  const [name] = positionals;
  if (positionals.length !== 1 || !name || !values.user)
    throw invalidInput(`usage: deploy-mcp ${AUDIT_USAGE}`);
  const db = await openDatabase(config.databaseUrl, { poolSize: 1 });
  try {
    const user = await getUserByEmail(db.prisma, values.user);
    const project = await resolveProject(db.prisma, user.id, values.project);
    const resource =
      (await db.prisma.resource.findFirst({
        where: { userId: user.id, projectId: project.id, name, deletedAt: null },
      })) ??
      (await db.prisma.resource.findFirst({
        where: { userId: user.id, projectId: project.id, name },
        orderBy: { deletedAt: 'desc' },
      }));
    if (!resource) throw notFound(`resource "${name}" of ${values.user} in project "${project.name}"`);
    const secrets = openSecretBox(config);
    const journal = stackJournal(db.prisma, secrets);
    const stackName = resource.stackName;
    const { stack, updates } = stackName
      ? stackUpdates(
          await tenantStackRunner(config, secrets).read(stackName),
          await journal.entries(stackName),
          (d) => journal.redact(d),
        )
      : { stack: 'absent' as const, updates: [] };
    const report: ResourceAuditReport = {
      resource: {
        id: resource.id,
        name: resource.name,
        project: project.name,
        owner: values.user,
        type: resource.type,
        size: resource.size,
        region: resource.region,
        status: resource.status,
        stackName,
        credentialVersion: resource.credentialVersion,
        createdAt: resource.createdAt.toISOString(),
        deletedAt: resource.deletedAt?.toISOString() ?? null,
      },
      stack,
      history: updates
        .map((u, i) => {
          const before = updates[i - 1]?.state;
          return {
            version: u.number,
            kind: u.update.kind,
            result: u.update.result,
            startTime: u.update.startTime.toISOString(),
            resourceChanges: u.update.resourceChanges,
            stateKept: u.state !== undefined,
            changes: u.state ? diffStates(before ?? { resources: [] }, u.state) : null,
          };
        })
        .reverse(),
    };
    console.log(values.json ? JSON.stringify(report, null, 2) : renderText(report));
  } finally {
    await db.close();
  }
}

function renderText(r: ResourceAuditReport): string {
  const x = r.resource;
  const lines = [
    `resource ${x.name} (${x.type}, ${x.size}, ${x.region}) of ${x.owner}, project ${x.project}`,
    `  status ${x.status}${x.deletedAt ? `, deleted ${x.deletedAt}` : ''}; credential version ${x.credentialVersion}`,
    `  stack ${x.stackName ?? '-'} (${r.stack})`,
    '',
    'stack updates (newest first):',
  ];
  for (const u of r.history) {
    lines.push(
      `  #${u.version} ${u.kind} ${u.result} at ${u.startTime} ${JSON.stringify(u.resourceChanges)}`,
    );
    if (!u.changes) lines.push('    → state not kept');
    for (const c of u.changes ?? [])
      lines.push(
        `    ${c.change} ${c.type} ${c.to ?? c.from ?? ''}: ${c.properties.map((p) => p.path).join(', ') || '-'}`,
      );
  }
  return lines.join('\n');
}
