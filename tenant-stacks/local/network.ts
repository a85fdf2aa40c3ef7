/** The container network of one tenant (engine-wide, so named after the user's id). */
export function tenantNetwork(userId: string): string {
  return `dmcp-${userId}`;
}
