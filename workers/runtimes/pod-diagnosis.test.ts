import { describe, expect, it } from 'vitest';
import { diagnosePods, type Pod } from './pod-diagnosis.ts';

const pod = (status: Pod['status']): Pod => ({ metadata: { name: 'web-1' }, status });
const o = { memoryMb: 512, waitedMs: 1000 };

describe('diagnosePods: a release judged from the cluster’s own signals', () => {
  it('a ready pod is healthy', () => {
    expect(diagnosePods([pod({ conditions: [{ type: 'Ready', status: 'True' }] })], o)).toEqual({
      state: 'ready',
    });
  });

  it('a crash loop names the exit code and the restarts', () => {
    const crashed = pod({
      containerStatuses: [
        {
          name: 'app',
          ready: false,
          restartCount: 2,
          state: { waiting: { reason: 'CrashLoopBackOff' } },
          lastState: { terminated: { exitCode: 3, reason: 'Error' } },
        },
      ],
    });
    expect(diagnosePods([crashed], o)).toEqual({
      state: 'failed',
      reason: 'the process exited with code 3 (crash loop: restarted 2 times)',
      crashed: true,
    });
  });

  it('a first exit says how long the process ran', () => {
    const exited = pod({
      containerStatuses: [
        {
          name: 'app',
          ready: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode: 1,
              startedAt: '2026-01-01T00:00:00Z',
              finishedAt: '2026-01-01T00:00:02Z',
            },
          },
        },
      ],
    });
    expect(diagnosePods([exited], o)).toMatchObject({ reason: 'the process exited with code 1 after 2.0 s' });
  });

  it('OOMKilled names the memory limit', () => {
    const oom = pod({
      containerStatuses: [
        {
          name: 'app',
          ready: false,
          restartCount: 1,
          lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
        },
      ],
    });
    expect(diagnosePods([oom], o)).toMatchObject({
      reason: 'the process was killed: it ran out of memory (limit 512 MiB); raise memory',
    });
  });

  it("an image that cannot be pulled quotes the registry's message", () => {
    const pull = pod({
      containerStatuses: [
        {
          name: 'app',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'ErrImagePull', message: 'manifest unknown' } },
        },
      ],
    });
    expect(diagnosePods([pull], o)).toMatchObject({
      reason: 'the image could not be pulled: manifest unknown',
    });
  });

  it('an unschedulable pod quotes the scheduler, once the scheduler had time to retry', () => {
    const pending = pod({
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: '0/1 nodes: Insufficient memory.',
        },
      ],
    });
    expect(diagnosePods([pending], o)).toEqual({ state: 'waiting' });
    expect(diagnosePods([pending], { ...o, waitedMs: 20_000 })).toMatchObject({
      reason: 'the pod cannot be scheduled: 0/1 nodes: Insufficient memory.',
    });
  });

  it('pods the quota refuses are named by the ReplicaSet', () => {
    const replicaSet = [
      {
        type: 'ReplicaFailure',
        status: 'True',
        message: 'exceeded quota: tenant, requested: limits.memory=1Gi',
      },
    ];
    expect(diagnosePods([], { ...o, replicaSet })).toMatchObject({
      reason: 'the pod could not be created: exceeded quota: tenant, requested: limits.memory=1Gi',
    });
  });

  it('a pod still starting is waiting', () => {
    const starting = pod({
      containerStatuses: [
        { name: 'app', ready: false, restartCount: 0, state: { running: { startedAt: 'x' } } },
      ],
    });
    expect(diagnosePods([starting], o)).toEqual({ state: 'waiting' });
    expect(diagnosePods([], o)).toEqual({ state: 'waiting' });
  });
});
