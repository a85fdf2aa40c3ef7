// Pulumi's dynamic-provider plugin (`pulumi-nodejs`), started as Pulumi's own launcher starts it
// but without loading what a provider never calls: see README.md beside this file.
import { createRequire, registerHooks } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const pulumiDir = path.dirname(require.resolve('@pulumi/pulumi'));
const runtimeIndex = pathToFileURL(path.join(pulumiDir, 'runtime', 'index.js')).href;
const deferred = new Set(
  ['serializeClosure.js', 'codePaths.js'].map(
    (f) => pathToFileURL(path.join(pulumiDir, 'runtime', 'closure', f)).href,
  ),
);
const stub = new URL('./closure-on-demand.ts', import.meta.url).href;

registerHooks({
  resolve(specifier, context, next) {
    const resolved = next(specifier, context);
    return context.parentURL === runtimeIndex && deferred.has(resolved.url)
      ? { url: stub, format: 'module-typescript', shortCircuit: true }
      : resolved;
  },
});

require(path.join(pulumiDir, 'cmd', 'dynamic-provider', 'index.js'));
