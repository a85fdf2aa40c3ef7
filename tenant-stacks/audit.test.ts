import { describe, expect, it } from 'vitest';
import { auditOutputs, auditState, diffStates, REDACTED, releasesIn, secretFingerprint } from './audit.ts';
import { type KeptUpdate, matchKept, type StackUpdateRecord } from './runner.ts';

const SIG = '4dabf18193072939515e22adb298388d';
const SECRET = '1b47061264138c4ac30d75fd1eb44270';
/** A secret as `stack.exportStack()` shows it (the Automation API always exports with --show-secrets). */
const secret = (value: unknown) => ({ [SIG]: SECRET, plaintext: JSON.stringify(value) });

/** A deployment like the local program's: a release container and the route to it. */
function deployment(o: { key: string; port: number; env: string[]; image?: string; extra?: unknown }) {
  const container = `urn:pulumi:s::p::pulumi-nodejs:dynamic:Resource::release-${o.key}`;
  const inputs = {
    image: o.image ?? 'img:1',
    env: secret(o.env),
    __provider: 'exports.handler = …',
    extra: o.extra,
  };
  return {
    secrets_providers: { type: 'passphrase', state: { salt: 'v1:abc:def' } },
    resources: [
      {
        urn: container,
        type: 'pulumi-nodejs:dynamic:Resource',
        inputs,
        outputs: { ...inputs, hostPort: o.port },
      },
      {
        urn: 'urn:pulumi:s::p::pulumi-nodejs:dynamic:Resource::route',
        type: 'pulumi-nodejs:dynamic:Resource',
        inputs: { upstream: `http://127.0.0.1:${o.port}` },
        outputs: { upstream: `http://127.0.0.1:${o.port}` },
      },
    ],
  };
}

describe('auditState: a stack state an audit may keep and print', () => {
  const fp = secretFingerprint('key-one');

  it('keeps no secret value: secrets and env values become keyed fingerprints, env names stay', () => {
    const state = auditState(
      deployment({
        key: 'a',
        port: 4001,
        env: ['API_TOKEN=tok-123', 'GREETING=hi-456'],
        extra: [1, secret('arr-789')],
      }),
      fp,
    );
    const text = JSON.stringify(state);
    for (const value of ['tok-123', 'hi-456', 'arr-789', 'salt', 'exports.handler'])
      expect(text).not.toContain(value);
    const container = state.resources[0];
    expect(Object.keys(container?.inputs ?? {}).sort()).toEqual([
      '__provider',
      'env.API_TOKEN',
      'env.GREETING',
      'extra.0',
      'extra.1',
      'image',
    ]);
    expect(container?.inputs['env.API_TOKEN']).toEqual({ secret: expect.stringMatching(/^hmac-sha256:/) });
    expect(container?.inputs.__provider).toEqual({
      value: expect.stringMatching(/^\[provider code sha256:\w{12}\]$/),
    });
    expect(container?.inputs.image).toEqual({ value: 'img:1' });
    expect(releasesIn(state)).toEqual({ active: 'a', others: [] });
  });

  it('fingerprints with the key: equal values match under one key, and differ under another', () => {
    const d = deployment({ key: 'a', port: 4001, env: ['API_TOKEN=tok-123'] });
    const leaf = (key: string) => auditState(d, secretFingerprint(key)).resources[0]?.inputs['env.API_TOKEN'];
    expect(leaf('key-one')).toEqual(leaf('key-one'));
    expect(leaf('key-one')).not.toEqual(leaf('key-two'));
  });

  it('diffs two kept states: a changed secret is reported as changed, by name only', () => {
    const a = auditState(deployment({ key: 'a', port: 4001, env: ['API_TOKEN=v1', 'GREETING=hi'] }), fp);
    const b = auditState(
      deployment({ key: 'b', port: 4002, env: ['API_TOKEN=v2', 'GREETING=hi', 'NEW=x'], image: 'img:2' }),
      fp,
    );
    const [container, route] = diffStates(a, b);
    expect(container).toMatchObject({ change: 'changed', from: 'release-a', to: 'release-b' });
    expect(container?.properties).toEqual(
      expect.arrayContaining([
        {
          path: 'env.API_TOKEN',
          in: ['inputs', 'outputs'],
          from: REDACTED,
          to: REDACTED,
          secretChanged: true,
        },
        { path: 'env.NEW', in: ['inputs', 'outputs'], to: REDACTED },
        { path: 'image', in: ['inputs', 'outputs'], from: 'img:1', to: 'img:2' },
      ]),
    );
    expect(container?.properties.map((p) => p.path)).not.toContain('env.GREETING');
    expect(route?.properties.map((p) => p.path)).toEqual(['upstream']);
    expect(diffStates(a, a)).toEqual([]);
  });

  it('prints secret outputs as [secret]', () => {
    expect(
      auditOutputs({ url: { value: 'http://x', secret: false }, token: { value: 's', secret: true } }),
    ).toEqual({ url: 'http://x', token: REDACTED });
  });
});

describe('matchKept: which kept copy belongs to which update of the backend history', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
  const update = (start: number, kind: StackUpdateRecord['kind'] = 'update'): StackUpdateRecord => ({
    version: 0, // the file backend's
    kind,
    result: 'succeeded',
    startTime: at(start),
    endTime: at(start + 1),
    resourceChanges: {},
  });
  const kept = (u: StackUpdateRecord, tag: string): KeptUpdate => ({
    update: u,
    state: { resources: [{ urn: tag, type: 't', inputs: {}, outputs: {} }] },
  });

  it('pairs equal records in order and leaves updates it never kept unmatched', () => {
    const history = [update(1), update(5), update(5), update(9, 'refresh'), update(12)];
    const copies = [kept(update(5), 'first'), kept(update(5), 'second'), kept(update(12), 'last')];
    expect(matchKept(history, copies).map((k) => k?.state?.resources[0]?.urn)).toEqual([
      undefined,
      'first',
      'second',
      undefined,
      'last',
    ]);
  });
});
