/** What Prisma reports on a unique-constraint violation, through either driver adapter. */
type UniqueViolationMeta = {
  /** Older engines: the constraint's fields (or its name). */
  target?: unknown;
  driverAdapterError?: {
    cause?: {
      /** SQLite names the fields; PostgreSQL names the index ("Service_hostLabel_key"). */
      constraint?: { fields?: string[]; index?: string };
    };
  };
};

/**
 * Whether `err` is a unique-constraint violation (Prisma's P2002) — on `field` when given, for
 * callers that tell one taken name from another. The one definition the product uses.
 */
export function isUniqueViolation(err: unknown, field?: string): boolean {
  if ((err as { code?: unknown } | null)?.code !== 'P2002') return false;
  if (field === undefined) return true;
  const meta = (err as { meta?: UniqueViolationMeta }).meta;
  const constraint = meta?.driverAdapterError?.cause?.constraint;
  const target = meta?.target;
  return (
    (constraint?.fields?.includes(field) ?? false) ||
    (constraint?.index?.endsWith(`_${field}_key`) ?? false) ||
    (Array.isArray(target) && target.includes(field)) ||
    (typeof target === 'string' && target.endsWith(`_${field}_key`))
  );
}
