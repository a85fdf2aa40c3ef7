import { lookup } from 'node:dns/promises';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';

/** How a Client ID Metadata Document is fetched; tests inject a resolver, an address policy and a CA. */
export type MetadataFetchOptions = {
  /** Resolves a host name to its addresses (default: the system resolver, every address). */
  resolve?: (host: string) => Promise<string[]>;
  /** Whether an address may be connected to (default: public unicast addresses only). */
  isAllowedAddress?: (address: string) => boolean;
  /** Extra CA certificates to trust (tests). */
  ca?: string;
  timeoutMs?: number;
  maxBytes?: number;
};

export const METADATA_TIMEOUT_MS = 5000;
export const METADATA_MAX_BYTES = 16 * 1024;

export class MetadataFetchError extends Error {}

// Two lists: Node's BlockList matches IPv4 addresses against ::ffff:0:0/96 rules too.
const blocked4 = new BlockList();
const blocked6 = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  blocked4.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['::ffff:0:0', 96],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const)
  blocked6.addSubnet(net, bits, 'ipv6');

/**
 * True for public unicast addresses: not loopback, private, link-local (169.254.0.0/16, where
 * cloud metadata lives), shared, documentation, multicast or reserved; IPv4-mapped and NAT64
 * IPv6 forms are refused rather than unwrapped.
 */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !blocked4.check(address, 'ipv4');
  if (family === 6) return !blocked6.check(address, 'ipv6');
  return false;
}

async function systemResolve(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
}

/**
 * Fetches a Client ID Metadata Document without letting its URL reach inside the network:
 * https only; the name is resolved once and every address must be public; the connection is
 * pinned to the checked address (no second resolution to rebind); no redirects; a 5 s deadline
 * for the whole exchange; at most 16 KiB; JSON only.
 */
export async function fetchClientMetadata(url: string, options: MetadataFetchOptions = {}): Promise<unknown> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new MetadataFetchError('the client_id is not a URL');
  }
  if (target.protocol !== 'https:') throw new MetadataFetchError('the client_id URL must use https');
  if (target.username || target.password)
    throw new MetadataFetchError('the client_id URL must not carry credentials');
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const allowed = options.isAllowedAddress ?? isPublicAddress;
  const timeoutMs = options.timeoutMs ?? METADATA_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? METADATA_MAX_BYTES;
  const deadline = AbortSignal.timeout(timeoutMs);

  const addresses = isIP(host)
    ? [host]
    : await Promise.race([
        (options.resolve ?? systemResolve)(host),
        new Promise<never>((_, reject) =>
          deadline.addEventListener('abort', () =>
            reject(new MetadataFetchError('resolving the host timed out')),
          ),
        ),
      ]).catch((err: unknown) => {
        throw err instanceof MetadataFetchError ? err : new MetadataFetchError(`cannot resolve ${host}`);
      });
  if (addresses.length === 0) throw new MetadataFetchError(`cannot resolve ${host}`);
  const refused = addresses.find((a) => !allowed(a));
  if (refused !== undefined)
    throw new MetadataFetchError(
      `${host} resolves to a non-public address; metadata is fetched from public addresses only`,
    );
  const pinned = addresses[0] as string;

  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: pinned,
        servername: isIP(host) ? undefined : host,
        port: target.port || 443,
        path: `${target.pathname}${target.search}`,
        method: 'GET',
        headers: { host: target.host, accept: 'application/json', 'user-agent': 'deploy-mcp' },
        signal: deadline,
        agent: false,
        ...(options.ca ? { ca: options.ca } : {}),
        // The certificate must match the name in the URL, not the pinned address.
        checkServerIdentity: (_h, cert) => checkServerIdentity(host, cert),
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(
            new MetadataFetchError(
              res.statusCode && res.statusCode >= 300 && res.statusCode < 400
                ? 'the metadata document redirects; redirects are not followed'
                : `the metadata document answered HTTP ${res.statusCode}`,
            ),
          );
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            req.destroy();
            reject(new MetadataFetchError(`the metadata document exceeds ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch {
            reject(new MetadataFetchError('the metadata document is not JSON'));
          }
        });
        res.on('error', () => reject(new MetadataFetchError('reading the metadata document failed')));
      },
    );
    req.on('error', (err) =>
      reject(
        new MetadataFetchError(
          deadline.aborted
            ? `fetching the metadata document took longer than ${timeoutMs} ms`
            : `fetching the metadata document failed: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
        ),
      ),
    );
    req.end();
  });
}
