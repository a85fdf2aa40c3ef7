import type { SecretBox } from '../secrets.ts';
import { connectionAad } from './catalog.ts';

/** A resource attached to a service, as the release's environment needs it. */
export type Attachment = {
  attachedAt: Date;
  resource: { id: string; name: string; status: string; connectionEncrypted: string | null };
};

/** The prefix of an attached resource's variables: its name in capitals, "-" as "_" (db-main → DB_MAIN_). */
export function resourcePrefix(name: string): string {
  return `${name.toUpperCase().replace(/-/g, '_')}_`;
}

/**
 * The variables attached resources give a release: each ready resource's connection variables;
 * with several attached, each one's also prefixed with its name (`DB_DATABASE_URL`). The
 * unprefixed names belong to the oldest attachment, so attaching a second database never
 * renames the first one's. The service's own env vars win over all of them (applied by the caller).
 */
export function resourceEnv(attachments: Attachment[], secrets: SecretBox): Record<string, string> {
  const ready = attachments
    .filter((a) => a.resource.status === 'ready' && a.resource.connectionEncrypted)
    .sort(
      (a, b) =>
        a.attachedAt.getTime() - b.attachedAt.getTime() || a.resource.name.localeCompare(b.resource.name),
    );
  const env: Record<string, string> = {};
  for (const [i, a] of ready.entries()) {
    const vars = secrets.openJson<Record<string, string>>(
      a.resource.connectionEncrypted ?? '',
      connectionAad(a.resource.id),
    );
    for (const [k, v] of Object.entries(vars)) {
      if (i === 0) env[k] = v;
      if (ready.length > 1) env[`${resourcePrefix(a.resource.name)}${k}`] = v;
    }
  }
  return env;
}
