import type { PulumiFn } from '@pulumi/pulumi/automation/index.js';

/**
 * A program factory whose module is loaded when the program runs (inside a stack update), not
 * when its caller's module is: the programs import `@pulumi/pulumi`, which loads TypeScript for
 * its closure serialization (about 100 MiB in all), and a server that deploys nothing should not
 * hold that. Called the same way as the factory `load` resolves to.
 */
export function lazyProgram<Spec extends unknown[]>(
  load: () => Promise<(...spec: Spec) => PulumiFn>,
): (...spec: Spec) => PulumiFn {
  return (...spec) =>
    async () =>
      (await load())(...spec)();
}
