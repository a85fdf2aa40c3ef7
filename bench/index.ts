// npm run bench: performance figures, printed (targets live here, never in test assertions).
import { benchGit } from './git.ts';
import { benchMcp } from './mcp.ts';

await benchMcp();
await benchGit();
