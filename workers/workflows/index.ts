// The workflow bundle's entry point: every workflow the workers run is exported here.

export { deleteService } from './delete-service.ts';
export { deployService } from './deploy-service.ts';
export { deleteResource, provisionResource, rotateResource } from './resources.ts';
export { selfCheck } from './self-check.ts';
