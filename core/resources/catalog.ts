import { invalidInput } from '../errors.ts';

/*
 * What create_resource offers: the types, their sizes and the regions each backend has. One
 * definition, used by the tool descriptions, the domain service and the workers.
 */

/** Resource types; `libsql` (the seed's name) is another name for `sqlite`. */
export const RESOURCE_KINDS = ['postgres', 'sqlite'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];
export const RESOURCE_TYPE_NAMES = ['postgres', 'sqlite', 'libsql'] as const;

/** The type a name given by an agent stands for. */
export function resourceKind(type: (typeof RESOURCE_TYPE_NAMES)[number]): ResourceKind {
  return type === 'libsql' ? 'sqlite' : type;
}

/** Sizes: at most this many connections at once (role and database limits on PostgreSQL). */
export const RESOURCE_SIZE_CONNECTIONS = { small: 5, medium: 20, large: 50 } as const;
export type ResourceSize = keyof typeof RESOURCE_SIZE_CONNECTIONS;

/** The region of resources on this machine's own servers (the embedded default). */
export const LOCAL_REGION = 'local';

/** Regions a backend offers for `kind`; the first is the default. */
export type RegionCatalog = Record<ResourceKind, string[]>;

/** The embedded default's catalog: everything on this machine. */
export const EMBEDDED_REGIONS: RegionCatalog = { postgres: [LOCAL_REGION], sqlite: [LOCAL_REGION] };

/** The region to use for `kind`: `asked` when the backend offers it, else an error naming what it offers. */
export function pickRegion(catalog: RegionCatalog, kind: ResourceKind, asked: string | undefined): string {
  const offered = catalog[kind];
  if (asked === undefined) return offered[0] ?? LOCAL_REGION;
  if (!offered.includes(asked))
    throw invalidInput(`region "${asked}" is not offered for ${kind} here; regions: ${offered.join(', ')}`);
  return asked;
}

/** PostgreSQL names of a resource's database and role (the same): lowercase, at most 63 bytes. */
export function postgresNames(resource: { id: string; name: string }): { database: string; role: string } {
  const base = `${resource.name.replace(/-/g, '_').slice(0, 40)}_${resource.id.slice(-10).toLowerCase()}`;
  return { database: base, role: base };
}

/** The Pulumi stack of a resource: stable, and unique across tenants. */
export function resourceStackName(resource: { id: string; name: string }): string {
  return `res-${resource.name.slice(0, 30)}-${resource.id}`;
}

/** The additional authenticated data binding a resource's sealed connection to its row. */
export const connectionAad = (resourceId: string) => `resource:${resourceId}:connection`;

/** Resource statuses (one typed union, used everywhere). */
export const RESOURCE_STATUSES = ['provisioning', 'ready', 'failed', 'deleting', 'deleted'] as const;
export type ResourceStatus = (typeof RESOURCE_STATUSES)[number];

/**
 * Turso names of a `sqlite` resource: its database (lowercase letters, digits, dashes, unique
 * across the organization: the resource's id is in it, so tenants' names never meet) and the
 * group of its region.
 */
export function tursoNames(
  resource: { id: string; name: string; region: string },
  groupPrefix: string,
): { database: string; group: string } {
  const name = resource.name
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 20);
  return { database: `${name}-${resource.id.toLowerCase()}`, group: `${groupPrefix}-${resource.region}` };
}

/** Whether a `sqlite` resource lives in Turso (any region but the embedded default's `local`). */
export const isTurso = (resource: { type: string; region: string }) =>
  resource.type === 'sqlite' && resource.region !== LOCAL_REGION;
