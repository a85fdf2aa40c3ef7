/** Product workflows (the `worker` role). */
export const PRODUCT_TASK_QUEUE = 'deploy-mcp-product';
/** Build and deploy activities (the `deployer-worker` role). */
export const DEPLOY_TASK_QUEUE = 'deploy-mcp-deploy';
