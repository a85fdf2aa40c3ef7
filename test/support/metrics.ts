/** Fetches GET <origin>/metrics, with a Bearer token when given. */
export async function scrape(origin: string, token?: string, scheme = 'Bearer') {
  const res = await fetch(`${origin}/metrics`, {
    headers: token === undefined ? {} : { authorization: `${scheme} ${token}` },
  });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/**
 * The value of one sample in a Prometheus text exposition: `name{labels}` with exactly these
 * labels (in any order); 0 when the series is absent (a counter not yet touched).
 */
export function sample(body: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of body.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '').split(',').filter(Boolean).sort().join(',');
    if (got === want) return Number(m[3]);
  }
  return 0;
}
