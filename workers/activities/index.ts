import type { createDeployActivities } from './deploy.ts';
import type { createSelfCheckActivities } from './self-check.ts';

// Each worker registers the activities of its role: the product worker createSelfCheckActivities,
// the deployer worker createDeployActivities. Workflows proxy this combined type.
export { createDeployActivities, type DeployDeps } from './deploy.ts';
export { createSelfCheckActivities, type SelfCheckDeps } from './self-check.ts';

export type Activities = ReturnType<typeof createSelfCheckActivities> &
  ReturnType<typeof createDeployActivities>;
