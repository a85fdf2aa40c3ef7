// npm run bench: performance figures, printed (targets live here, never in test assertions).
// `npm run bench -- deploy` (or mcp, git, databases) runs one group.
import { benchDatabases } from './databases.ts';
import { benchDeploy } from './deploy.ts';
import { benchGit } from './git.ts';
import { benchMcp } from './mcp.ts';

const groups = { mcp: benchMcp, git: benchGit, deploy: benchDeploy, databases: benchDatabases };
const only = process.argv.slice(2);
for (const [name, run] of Object.entries(groups)) if (only.length === 0 || only.includes(name)) await run();
