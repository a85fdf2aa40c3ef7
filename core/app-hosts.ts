import { createHash } from 'node:crypto';
import { DEFAULT_PROJECT } from './users.ts';

/**
 * The DNS label a service is served under: "<service>-<owner>" (plus "-<project>" outside the
 * default project), unique across tenants. Too long for a label (63): shortened with a hash.
 */
export function serviceHostLabel(service: string, project: string, owner: string): string {
  const label = project === DEFAULT_PROJECT ? `${service}-${owner}` : `${service}-${project}-${owner}`;
  if (label.length <= 63) return label;
  const hash = createHash('sha256').update(label).digest('hex').slice(0, 8);
  return `${service.slice(0, 54).replace(/-+$/, '')}-${hash}`;
}
