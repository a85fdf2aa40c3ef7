import { DefaultLogger, type LogLevel, Runtime } from '@temporalio/worker';
import type { Logger } from '../core/log.ts';

let installed = false;

/** Sends the Temporal SDK's own logs through our structured logger (once per process). */
export function installTemporalRuntime(log: Logger, level: LogLevel = 'WARN') {
  if (installed) return;
  installed = true;
  const child = log.child({ component: 'temporal-sdk' });
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      const fields = { ...entry.meta };
      if (entry.level === 'ERROR') child.error(fields, entry.message);
      else if (entry.level === 'WARN') child.warn(fields, entry.message);
      else child.debug(fields, entry.message);
    }),
  });
}
