import type { Db } from '../../core/db/client.ts';
import type { Logger } from '../../core/log.ts';
import type { MetadataFetchOptions } from './client-metadata-fetch.ts';
import type { RegistrationLimits } from './clients.ts';
import type { Csrf } from './sessions.ts';
import type { SignInMethod } from './sign-in.ts';

/** What every handler of the authorization server shares. */
export type AuthContext = {
  db: Db;
  log: Logger;
  /** This authorization server's issuer: the public URL, no trailing slash. */
  issuer: string;
  /** The protected resource tokens are for: `<issuer>/mcp` (RFC 8707). */
  resource: string;
  now: () => Date;
  csrf: Csrf;
  metadataFetch: MetadataFetchOptions | undefined;
  registrationLimits: RegistrationLimits;
  signInMethods: SignInMethod[];
};
