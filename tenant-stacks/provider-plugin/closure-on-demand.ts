// What `@pulumi/pulumi/runtime` takes from its closure-serialization modules, loaded on first use.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const closureDir = path.join(path.dirname(require.resolve('@pulumi/pulumi')), 'runtime', 'closure');
const serializeClosure = () => require(path.join(closureDir, 'serializeClosure.js'));
const codePaths = () => require(path.join(closureDir, 'codePaths.js'));

export const serializeFunctionAsync = (...args: unknown[]) =>
  serializeClosure().serializeFunctionAsync(...args);
export const serializeFunction = (...args: unknown[]) => serializeClosure().serializeFunction(...args);
export const computeCodePaths = (...args: unknown[]) => codePaths().computeCodePaths(...args);
