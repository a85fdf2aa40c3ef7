import { describe, expect, it } from 'vitest';
import { stackOutputs } from './runner.ts';

// The root stack resource of a state as `pulumi stack export --show-secrets` printed it (Pulumi
// 3.259.0, the runner's `stack.exportStack()`): a secret output keeps Pulumi's secret signature
// beside its plaintext JSON.
const deployment = {
  manifest: { time: '2026-11-27T18:55:38Z' },
  resources: [
    {
      urn: 'urn:pulumi:s::exp2::pulumi:pulumi:Stack::exp2-s',
      type: 'pulumi:pulumi:Stack',
      outputs: {
        n: 3,
        sec: { '4dabf18193072939515e22adb298388d': '1b47061264138c4ac30d75fd1eb44270', plaintext: '{"a":1}' },
        v: '1795805738845',
        list: [
          1,
          { '4dabf18193072939515e22adb298388d': '1b47061264138c4ac30d75fd1eb44270', plaintext: '"x"' },
        ],
      },
    },
    {
      urn: 'urn:pulumi:s::exp2::pulumi-nodejs:dynamic:Resource::a',
      type: 'pulumi-nodejs:dynamic:Resource',
      outputs: { v: 'other' },
    },
  ],
};

describe("stackOutputs: a stack's outputs read from its exported state", () => {
  it("gives the root resource's outputs as stack.outputs() does, secrets flagged and decoded", () => {
    expect(stackOutputs(deployment)).toEqual({
      n: { value: 3, secret: false },
      sec: { value: { a: 1 }, secret: true },
      v: { value: '1795805738845', secret: false },
      list: { value: [1, 'x'], secret: true },
    });
  });

  it('gives nothing for a state without a stack resource (an empty or destroyed stack)', () => {
    expect(stackOutputs({ manifest: {}, resources: [] })).toEqual({});
    expect(stackOutputs({})).toEqual({});
    expect(stackOutputs(undefined)).toEqual({});
  });
});
