// npm run bench: performance figures, printed (targets live here, never in test assertions).
// `npm run bench -- deploy` (or mcp, memory, git, databases, concurrency, provider, update, apps) runs one group;
// `npm run bench -- deploy local` (or `kubernetes`) runs the deploy figures on that runtime only.
import { benchApps } from './apps.ts';
import { benchConcurrency } from './concurrency.ts';
import { benchDatabases } from './databases.ts';
import { benchDeploy } from './deploy.ts';
import { benchGit } from './git.ts';
import { benchMcp } from './mcp.ts';
import { benchMemory } from './memory.ts';
import { benchProviderStart } from './provider-start.ts';
import { benchUpdateStart } from './update-start.ts';

const groups = {
  mcp: benchMcp,
  memory: benchMemory,
  git: benchGit,
  deploy: () => benchDeploy(only.filter((a) => a === 'local' || a === 'kubernetes')),
  databases: benchDatabases,
  concurrency: benchConcurrency,
  provider: benchProviderStart,
  update: benchUpdateStart,
};
const only = process.argv.slice(2);
for (const [name, run] of Object.entries(groups)) if (only.length === 0 || only.includes(name)) await run();
// `apps` (every starter-shaped app of the corpus: many minutes) runs only when named; the names
// after it pick some apps.
if (only[0] === 'apps') await benchApps(only.slice(1));
