/**
 * A failure the caller can act on (bad input, not found, conflict, not available yet). Its
 * message is written for an agent and is safe to show; anything else is a server fault and
 * is logged, never shown.
 */
export class DomainError extends Error {
  override name = 'DomainError';
  readonly code: 'invalid_input' | 'not_found' | 'conflict' | 'not_available' | 'unauthorized';

  constructor(
    code: 'invalid_input' | 'not_found' | 'conflict' | 'not_available' | 'unauthorized',
    message: string,
  ) {
    super(message);
    this.code = code;
  }
}

export const notFound = (what: string, hint?: string) =>
  new DomainError('not_found', `${what} not found${hint ? `. ${hint}` : ''}`);

export const invalidInput = (message: string) => new DomainError('invalid_input', message);

export const conflict = (message: string) => new DomainError('conflict', message);

/** For tools whose backend lands in a later release. */
export const notAvailableYet = (what: string) =>
  new DomainError('not_available', `${what} is not available yet on this server.`);
