/** Product workflows (the `worker` role). */
export const PRODUCT_TASK_QUEUE = 'deploy-mcp-product';
/** Build and deploy activities (the `deployer-worker` role). */
export const DEPLOY_TASK_QUEUE = 'deploy-mcp-deploy';
/**
 * Builds only (also served by the `deployer-worker` role): each deployer worker runs at most
 * DEPLOY_MCP_MAX_BUILDS of them at once; the other deployments wait here, `queued`.
 */
export const BUILD_TASK_QUEUE = 'deploy-mcp-build';
/**
 * How long a deployment may wait for a builder (the build activity's scheduleToStart) before it
 * fails. A deployment `queued` for longer is no longer waiting (queue_position ignores it).
 */
export const BUILD_QUEUE_TIMEOUT_MS = 6 * 3_600_000;
