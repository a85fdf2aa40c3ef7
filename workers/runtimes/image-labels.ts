/**
 * The labels of an image in an OCI registry reached over plain HTTP (the product's own
 * registry): manifest → config blob → config.Labels. `image` is `host:port/repo@sha256:…`.
 */
export async function imageLabels(image: string): Promise<Record<string, string>> {
  const slash = image.indexOf('/');
  const at = image.indexOf('@');
  if (slash < 0 || at < 0) return {};
  const host = image.slice(0, slash);
  const repo = image.slice(slash + 1, at);
  const digest = image.slice(at + 1);
  const accept = [
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.v2+json',
  ].join(', ');
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`http://${host}/v2/${repo}/${path}`, {
      headers,
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new Error(`registry ${host}: HTTP ${res.status} for ${path}`);
    return res.json() as Promise<Record<string, unknown>>;
  };
  const manifest = (await get(`manifests/${digest}`, { accept })) as { config?: { digest?: string } };
  if (!manifest.config?.digest) return {};
  const config = (await get(`blobs/${manifest.config.digest}`)) as {
    config?: { Labels?: Record<string, string> | null };
  };
  return config.config?.Labels ?? {};
}
