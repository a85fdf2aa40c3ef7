import { createHash } from 'node:crypto';

/** The longest DNS-1123 label (a namespace name). */
const MAX_LABEL = 63;
const NAMESPACE_PREFIX = 'tenant-';
/** Hex digits of the user id's hash in a namespace name that had to be changed to fit. */
const HASH_LENGTH = 10;

/** Labels on every object we declare (values: ids, release keys). */
export const LABELS = {
  service: 'deploy-mcp.service',
  user: 'deploy-mcp.user',
  release: 'deploy-mcp.release',
} as const;

/**
 * The tenant's namespace: "tenant-<userId>" when the id is already a lowercase DNS label that
 * fits; otherwise the cleaned, shortened id plus a hash of the whole id, so two ids never share
 * a namespace (e.g. ids differing only in case).
 */
export function tenantNamespace(userId: string): string {
  const clean = userId
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+|-+$/g, '');
  if (clean === userId && clean && NAMESPACE_PREFIX.length + clean.length <= MAX_LABEL)
    return `${NAMESPACE_PREFIX}${clean}`;
  const hash = createHash('sha256').update(userId).digest('hex').slice(0, HASH_LENGTH);
  const head = clean.slice(0, MAX_LABEL - NAMESPACE_PREFIX.length - HASH_LENGTH - 1).replace(/-+$/, '');
  return head ? `${NAMESPACE_PREFIX}${head}-${hash}` : `${NAMESPACE_PREFIX}${hash}`;
}

/** The Pulumi stack holding a tenant's namespace, quota and policies (tenant-program.ts). */
export function tenantStackName(userId: string): string {
  return `tenant-${userId}`;
}
