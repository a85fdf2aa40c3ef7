// Bundles the workflow code (workers/workflows/index.ts) with the Temporal SDK's bundler and
// writes the bundle to stdout. Run as a child process by workers/workflow-bundle.ts, so webpack
// (tens of MiB once loaded) never stays in the server's heap. Plain JavaScript: it needs no
// TypeScript loader (the SDK's bundler compiles the workflow files itself).
import { bundleWorkflowCode } from '@temporalio/worker';

const [workflowsPath] = process.argv.slice(2);
if (!workflowsPath) {
  process.stderr.write('usage: bundle-workflows.mjs <workflows entry>\n');
  process.exit(2);
}
const quiet = () => {};
const { code } = await bundleWorkflowCode({
  workflowsPath,
  logger: {
    log: quiet,
    trace: quiet,
    debug: quiet,
    info: quiet,
    warn: (message, meta) => process.stderr.write(`${message} ${meta ? JSON.stringify(meta) : ''}\n`),
    error: (message, meta) => process.stderr.write(`${message} ${meta ? JSON.stringify(meta) : ''}\n`),
  },
});
process.stdout.write(code);
