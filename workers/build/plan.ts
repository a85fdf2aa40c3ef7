/** What to build and run, decided from the repo's files (railpack-style rules) and overrides. */
export type BuildPlan = NodePlan | PythonPlan | GoPlan | StaticPlan | DockerfilePlan;

type Commands = {
  /** Files the install step needs, copied before the rest (["."]: the whole repo). */
  installFiles: string[];
  /** undefined: nothing to install. */
  install: string | undefined;
  build: string | undefined;
  start: string;
  /** Human-readable reasons, shown in the build log. */
  notes: string[];
};

export type NodePlan = Commands & {
  pack: 'node';
  /** The Node.js major version (engines.node, .nvmrc, .node-version; else the default). */
  nodeMajor: number;
  /** A single-page app: this build output folder is served as static files (`start` serves it). */
  staticRoot?: string;
  packageManager: 'npm' | 'pnpm' | 'yarn';
  /** npm package installed globally before the install, e.g. "pnpm@10.34.9" (npm is in the base). */
  managerPackage: string | undefined;
};

export type PythonPlan = Commands & {
  pack: 'python';
  /** "3.11" (the python base) or another offered version (python-version.ts). */
  pythonVersion: string;
  /** Run before each start, e.g. Django's migrate; its failure stops the start. */
  preStart?: string;
};

/** The build writes the app's binary to /out/app; the runtime image has it on PATH as `app`. */
export type GoPlan = Commands & { pack: 'go' };

export type StaticPlan = { pack: 'static'; root: string; notes: string[] };

export type DockerfilePlan = { pack: 'dockerfile'; dockerfile: string; notes: string[] };

export type Overrides = {
  /** auto (default): a Dockerfile if there is one, else railpack's detection. */
  buildPack?: 'auto' | 'railpack' | 'dockerfile' | 'static' | undefined;
  installCommand?: string | undefined;
  buildCommand?: string | undefined;
  startCommand?: string | undefined;
};

/** A build-pack failure the user can fix in their repo; the message says how. */
export class DetectError extends Error {
  override name = 'DetectError';
}
