// Entry point of `pulumi preview` / `pulumi up` on the root Pulumi.yaml (where the Node language
// host exists); `deploy-mcp platform` runs the same program inline through the Automation API.
import { readPlatformConfig } from './config.ts';
import { platformProgram } from './program.ts';

export default async () => platformProgram(readPlatformConfig())();
