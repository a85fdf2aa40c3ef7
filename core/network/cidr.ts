/** An IPv4 range "a.b.c.d/n" as its first address (a 32-bit number) and prefix length. */
export type Cidr = { base: number; bits: number };

const CIDR_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** Parses an IPv4 CIDR whose address is the range's first (10.0.0.0/16, not 10.0.0.1/16); undefined if not one. */
export function parseCidr(text: string): Cidr | undefined {
  const m = CIDR_RE.exec(text);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) return undefined;
  const base = octets.reduce((n, o) => n * 256 + o, 0);
  if (base % 2 ** (32 - bits) !== 0) return undefined;
  return { base, bits };
}

/** Whether every address of `inner` lies in `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return (
    inner.bits >= outer.bits &&
    Math.floor(inner.base / 2 ** (32 - outer.bits)) === outer.base / 2 ** (32 - outer.bits)
  );
}
