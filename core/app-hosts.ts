import { createHash } from 'node:crypto';
import { conflict } from './errors.ts';
import { DEFAULT_PROJECT } from './users.ts';

/** The longest DNS label. */
const MAX_LABEL = 63;
/** Hex digits of the full label's hash kept in a shortened label. */
const HASH_LENGTH = 8;
/** The most of an owner name a shortened label keeps: room for "<1 char>-<hash>-". */
const MAX_OWNER_PART = MAX_LABEL - HASH_LENGTH - 3;

/**
 * The DNS label a service is served under: "<service>-<owner>" ("<service>-<project>-<owner>"
 * outside the default project). Longer than a label may be, the service/project part is
 * shortened and a hash of the full label added, keeping the whole owner name:
 * "<shortened>-<hash>-<owner>". Different names can still give the same label ("web" of owner
 * prod-alice and "web-prod" of owner alice): the database holds each label for one live service
 * (Service.hostLabel, reserved when the service is created).
 */
export function serviceHostLabel(service: string, project: string, owner: string): string {
  const name = project === DEFAULT_PROJECT ? service : `${service}-${project}`;
  const label = `${name}-${owner}`;
  if (label.length <= MAX_LABEL) return label;
  const hash = createHash('sha256').update(label).digest('hex').slice(0, HASH_LENGTH);
  // Owner names fit whole (git/owner-names.ts: MAX_OWNER_NAME_LENGTH); a longer one keeps its start.
  const ownerPart = owner.slice(0, MAX_OWNER_PART).replace(/-+$/, '');
  const room = MAX_LABEL - HASH_LENGTH - ownerPart.length - 2;
  // Service names start with a letter, so the shortened part is never empty.
  return `${name.slice(0, room).replace(/-+$/, '')}-${hash}-${ownerPart}`;
}

/** The refusal when another live service holds the hostname a service would get. */
export function hostnameTaken(label: string, what = 'Pick another service name.') {
  return conflict(`the hostname ${label} is already taken by another service. ${what}`);
}
