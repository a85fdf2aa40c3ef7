import { z } from 'zod';

// Input fields shared by the tools. Each message says what is accepted, so an agent can fix
// its call from the error alone (the SDK prefixes it with the field's path).

const DNS_LABEL = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Type errors that tell "missing" from "wrong type". */
const expected = (what: string, type: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? `${what} is required` : `${what} must be ${type}`;

/** A name that becomes part of a host name: a DNS label. */
export const dnsName = (what: string) =>
  z
    .string({ error: expected(what, 'a string') })
    .max(63, `${what} must be at most 63 characters`)
    .regex(
      DNS_LABEL,
      `${what} must be a DNS label: lowercase letters, digits and "-", starting with a letter, not ending with "-"`,
    );

export const serviceName = dnsName('service name');
export const resourceName = dnsName('resource name');
export const repoName = dnsName('repo name');
export const projectName = dnsName('project name').optional().describe('Project name; default "default".');

/** Where a repo lives: our git server (default) or GitHub. */
export const GIT_HOSTS = ['internal', 'github', 'github.com'] as const;
export const gitHost = z
  .enum(GIT_HOSTS, { error: `host must be one of: ${GIT_HOSTS.join(', ')}` })
  .optional()
  .describe(
    'Git host: "internal" (default, our git server) or "github" (also "github.com"; through our GitHub App).',
  );

/** True when `host` names GitHub ("github" or "github.com"). */
export const isGitHub = (host: string | undefined) => host === 'github' || host === 'github.com';

/** A repo reference: a repo name on the host, "owner/name", or an https clone URL. */
export const repoRef = z
  .string({ error: expected('repo', 'a string') })
  .min(1, 'repo must not be empty')
  .max(2048, 'repo must be at most 2048 characters')
  .refine((v) => !v.includes('..'), 'repo must not contain ".."')
  .refine((v) => !/[\s\0]/.test(v), 'repo must not contain whitespace')
  .refine(
    (v) =>
      v.includes('://')
        ? /^https:\/\/[^/]+\/.+/.test(v)
        : /^([a-z0-9][a-z0-9-]*\/)?[a-z0-9][a-z0-9._-]*$/i.test(v),
    'repo must be a repo name ("my-app"), "owner/name", or an https:// clone URL',
  );

export const branch = z
  .string({ error: expected('branch', 'a string') })
  .min(1, 'branch must not be empty')
  .max(255, 'branch must be at most 255 characters')
  .regex(/^[A-Za-z0-9._/-]+$/, 'branch may contain only letters, digits and . _ / -')
  .refine((v) => !v.includes('..') && !v.startsWith('-') && !v.startsWith('/') && !v.endsWith('/'), {
    message: 'branch must not contain "..", start with "-" or "/", or end with "/"',
  })
  .optional()
  .describe('Git branch to deploy; default "main".');

export const BUILD_PACKS = ['auto', 'railpack', 'dockerfile', 'static'] as const;
export const buildPack = z
  .enum(BUILD_PACKS, { error: `build_pack must be one of: ${BUILD_PACKS.join(', ')}` })
  .optional()
  .describe(
    "auto (default: the repo's Dockerfile if it has one, else railpack), railpack (detect Node.js, Python, Go " +
      'or a static site, ignoring any Dockerfile), dockerfile, or static.',
  );

export const port = z
  .number({ error: expected('port', 'a number') })
  .int('port must be an integer')
  .min(1, 'port must be between 1 and 65535')
  .max(65535, 'port must be between 1 and 65535')
  .optional()
  .describe('Port the app listens on; injected as PORT. Default: detected, else 3000.');

/** Memory sizes in MiB, keyed by the names agents pass. */
export const MEMORY_SIZES = { '256Mi': 256, '512Mi': 512, '1Gi': 1024, '2Gi': 2048, '4Gi': 4096 } as const;
export const memory = z
  .enum(Object.keys(MEMORY_SIZES) as [keyof typeof MEMORY_SIZES], {
    error: `memory must be one of: ${Object.keys(MEMORY_SIZES).join(', ')}`,
  })
  .optional()
  .describe('Memory limit; default 512Mi.');

/** CPU limits in millicores, keyed by the names agents pass. */
export const CPU_SIZES = { '0.25': 250, '0.5': 500, '1': 1000, '2': 2000 } as const;
export const cpu = z
  .enum(Object.keys(CPU_SIZES) as [keyof typeof CPU_SIZES], {
    error: `cpu must be one of: ${Object.keys(CPU_SIZES).join(', ')}`,
  })
  .optional()
  .describe('CPU limit in cores; default 0.5.');

export const MAX_ENV_VARS = 100;
export const envVars = z
  .record(
    z
      .string()
      .regex(
        /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
        'env_vars keys must be POSIX names: letters, digits, _; not starting with a digit',
      ),
    z
      .string({ error: 'env_vars values must be strings' })
      .max(32_768, 'env_vars values must be at most 32 KiB'),
    {
      error: (issue) =>
        issue.code === 'invalid_key'
          ? 'env_vars keys must be POSIX names: letters, digits and _, not starting with a digit, at most 128'
          : 'env_vars must be an object of NAME: "value" pairs',
    },
  )
  .refine((v) => Object.keys(v).length <= MAX_ENV_VARS, `env_vars may hold at most ${MAX_ENV_VARS} variables`)
  .refine(
    (v) => !Object.keys(v).some((k) => k === 'PORT'),
    'env_vars must not set PORT; use the port parameter',
  )
  .optional()
  .describe('Environment variables for build and runtime (stored encrypted).');

export const command = (what: string) =>
  z
    .string({ error: expected(what, 'a string') })
    .min(1, `${what} must not be empty`)
    .max(1000, `${what} must be at most 1000 characters`)
    .refine((v) => !/[\0\r\n]/.test(v), `${what} must be a single line`)
    .optional();

export const MAX_LOG_LINES = 500;
export const logLines = (what: string) =>
  z
    .number({ error: expected(what, 'a number') })
    .int(`${what} must be an integer`)
    .min(0, `${what} must be between 0 and ${MAX_LOG_LINES}`)
    .max(MAX_LOG_LINES, `${what} must be between 0 and ${MAX_LOG_LINES}`)
    .optional();

export const MAX_PAGE_SIZE = 100;
export const pageSize = z
  .number({ error: expected('limit', 'a number') })
  .int('limit must be an integer')
  .min(1, `limit must be between 1 and ${MAX_PAGE_SIZE}`)
  .max(MAX_PAGE_SIZE, `limit must be between 1 and ${MAX_PAGE_SIZE}`)
  .optional()
  .describe(`Page size, 1-${MAX_PAGE_SIZE}; default 20.`);

export const cursor = z
  .string({ error: expected('cursor', 'a string') })
  .max(200, 'cursor must be at most 200 characters')
  .regex(/^[A-Za-z0-9_-]+$/, 'cursor must be a value returned as next_cursor')
  .optional()
  .describe('next_cursor from the previous page.');

export const RESOURCE_TYPES = ['postgres', 'sqlite', 'libsql'] as const;
export const resourceType = z
  .enum(RESOURCE_TYPES, { error: `type must be one of: ${RESOURCE_TYPES.join(', ')}` })
  .optional()
  .describe('Database type: postgres (default) or sqlite (libsql is another name for sqlite).');

export const RESOURCE_SIZES = ['small', 'medium', 'large'] as const;
export const resourceSize = z
  .enum(RESOURCE_SIZES, { error: `size must be one of: ${RESOURCE_SIZES.join(', ')}` })
  .optional()
  .describe('Size; default small.');

// "local": this machine's own servers (the embedded default); the others are Turso's.
export const REGIONS = ['local', 'fra', 'ams', 'lhr', 'iad', 'sjc', 'nrt'] as const;
export const region = z
  .enum(REGIONS, { error: `region must be one of: ${REGIONS.join(', ')}` })
  .optional()
  .describe(
    'Region, among those the server offers for the type (see the tool description); default: the first.',
  );

export const description = z
  .string({ error: expected('description', 'a string') })
  .max(500, 'description must be at most 500 characters')
  .optional();
