import { createSelfCheckActivities, type SelfCheckDeps } from './self-check.ts';

export type ActivityDeps = SelfCheckDeps;

/** Every activity, bound to its dependencies. Workers register the result. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createSelfCheckActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
