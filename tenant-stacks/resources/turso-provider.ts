import type * as pulumi from '@pulumi/pulumi';

// Serialized into the provider launcher: self-contained (see ../local/providers.ts). The Turso
// client (`@tursodatabase/api`) is loaded from the absolute path in `api.module`.

/** How the provider reaches Turso's Platform API (a Pulumi secret in state: it holds the token). */
export type TursoApi = {
  /** Base URL without `/v1` (`https://api.turso.tech`). */
  url: string;
  org: string;
  /** The platform API token. */
  token: string;
  /** Absolute path of the `@tursodatabase/api` module. */
  module: string;
  /** Each call's time limit. */
  timeoutMs: number;
};

export type TursoDatabaseInputs = {
  api: TursoApi;
  /** The group of the resource's region (`<prefix>-<location>`), made on first use. */
  group: string;
  location: string;
  database: string;
  /** Database tokens' lifetime in Turso's format (`52w`). */
  tokenExpiration: string;
  /** The resource's credential version: a new one invalidates every token and mints another. */
  tokenVersion: number;
};

export type TursoDatabaseOutputs = TursoDatabaseInputs & {
  hostname: string;
  dbId: string;
  /** A full-access database token (a Pulumi secret in state). */
  token: string;
};

type Client = {
  groups: { create(name: string, location: string): Promise<unknown> };
  databases: {
    create(name: string, options: { group: string }): Promise<{ id: string; hostname: string; name: string }>;
    get(name: string): Promise<{ id: string; hostname: string; name: string; group?: string }>;
    delete(name: string): Promise<unknown>;
    createToken(
      name: string,
      options: { expiration: string; authorization: string },
    ): Promise<{ jwt: string }>;
    rotateTokens(name: string): Promise<unknown>;
  };
};

/** What went wrong talking to Turso, as `call` sees it. */
type Failure = { status: number | undefined; message: string };

/** One Turso database of a resource, with the group of its region and a database token. */
export const tursoDatabaseProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: TursoDatabaseInputs) {
    const self = tursoDatabaseProvider as unknown as TursoHelpers;
    const call = self.session(inputs.api);
    // The group of the region: made on first use, 409 when it exists already.
    await call(`make the group "${inputs.group}" in ${inputs.location}`, (c) =>
      c.groups.create(inputs.group, inputs.location),
    ).catch((err: Error & { status?: number }) => {
      if (err.status !== 409) throw err;
    });
    const made = await call(`make the database "${inputs.database}"`, (c) =>
      c.databases.create(inputs.database, { group: inputs.group }),
    ).catch(async (err: Error & { status?: number }) => {
      // A retry after a create that went through: ours when it is in our group (names hold the resource's id).
      if (err.status !== 409) throw err;
      const found = await call(`read the database "${inputs.database}"`, (c) =>
        c.databases.get(inputs.database),
      );
      if (found.group && found.group !== inputs.group) throw err;
      return found;
    });
    const token = await self.mint(call, inputs);
    const outs: TursoDatabaseOutputs = { ...inputs, hostname: made.hostname, dbId: made.id, token };
    return { id: inputs.database, outs };
  },

  async diff(_id: string, olds: TursoDatabaseOutputs, news: TursoDatabaseInputs) {
    const replaces = (['database', 'group', 'location'] as const).filter((k) => olds[k] !== news[k]);
    const changed =
      olds.tokenVersion !== news.tokenVersion ||
      olds.tokenExpiration !== news.tokenExpiration ||
      JSON.stringify(olds.api) !== JSON.stringify(news.api);
    return { changes: replaces.length > 0 || changed, replaces, deleteBeforeReplace: true };
  },

  /** A new token version invalidates every token of the database, then mints one; else nothing is called. */
  async update(_id: string, olds: TursoDatabaseOutputs, news: TursoDatabaseInputs) {
    const self = tursoDatabaseProvider as unknown as TursoHelpers;
    let token = olds.token;
    if (olds.tokenVersion !== news.tokenVersion) {
      const call = self.session(news.api);
      await call(`invalidate the tokens of "${news.database}"`, (c) =>
        // The API answers 200 without a body; the client parses one anyway.
        c.databases.rotateTokens(news.database).catch((err: unknown) => {
          if (!(err instanceof SyntaxError)) throw err;
        }),
      );
      token = await self.mint(call, news);
    }
    const outs: TursoDatabaseOutputs = { ...news, hostname: olds.hostname, dbId: olds.dbId, token };
    return { outs };
  },

  /** Deletes the database (one that is gone already is fine); the group stays for the region's others. */
  async delete(_id: string, olds: TursoDatabaseOutputs) {
    const self = tursoDatabaseProvider as unknown as TursoHelpers;
    await self
      .session(olds.api)(`delete the database "${olds.database}"`, (c) => c.databases.delete(olds.database))
      .catch((err: Error & { status?: number }) => {
        if (err.status !== 404) throw err;
      });
  },

  /** A full-access token that expires after `tokenExpiration`. */
  async mint(call: Call, inputs: TursoDatabaseInputs): Promise<string> {
    const { jwt } = await call(`make a token for "${inputs.database}"`, (c) =>
      c.databases.createToken(inputs.database, {
        expiration: inputs.tokenExpiration,
        authorization: 'full-access',
      }),
    );
    if (!jwt) throw new Error(`Turso answered no token for "${inputs.database}"`);
    return jwt;
  },

  /**
   * A caller of the API through the real client: each call is bounded (`timeoutMs`); a 5xx, 429,
   * timeout or network error is tried again, 3 attempts in all; the API's 400/401/403/404/409
   * become messages saying what to do. Errors keep the HTTP status (`status`) for the caller.
   */
  session(api: TursoApi): Call {
    const { createRequire } = process.getBuiltinModule('node:module');
    const { createClient } = createRequire(api.module)(api.module) as {
      createClient: (c: { org: string; token: string; baseUrl: string }) => Client;
    };
    const client = createClient({ org: api.org, token: api.token, baseUrl: `${api.url}/v1/` });
    const attempts = 3;
    const failureOf = (err: unknown): Failure => {
      const e = err as { status?: unknown; message?: unknown; name?: unknown };
      const message = String(e?.message ?? err);
      if (typeof e?.status === 'number') return { status: e.status, message };
      const m = /Status (\d{3})/.exec(message); // the client's answer to a body that is not JSON
      return { status: m ? Number(m[1]) : undefined, message };
    };
    const tagged = (message: string, status: number | undefined) =>
      Object.assign(new Error(message.replace(/\s+/g, ' ')), { status });
    return async (what, fn) => {
      let last: Failure = { status: undefined, message: '' };
      for (let attempt = 1; attempt <= attempts; attempt++) {
        let timer: NodeJS.Timeout | undefined;
        try {
          return await Promise.race([
            fn(client),
            new Promise<never>((_, reject) => {
              timer = setTimeout(
                () =>
                  reject(
                    Object.assign(new Error(`no answer within ${api.timeoutMs} ms`), { timedOut: true }),
                  ),
                api.timeoutMs,
              );
            }),
          ]);
        } catch (err) {
          last = failureOf(err);
          const { status } = last;
          const transient = status === undefined || status >= 500 || status === 429;
          if (transient && attempt < attempts) {
            await new Promise((r) => setTimeout(r, 500 * attempt));
            continue;
          }
          const said = last.message ? `: "${last.message.slice(0, 200)}"` : '';
          if (transient)
            throw tagged(
              `Turso is unavailable (${status ? `HTTP ${status}` : last.message.slice(0, 100)}) after ${attempts} attempts to ${what}; ` +
                'nothing was lost: make the same call again in a few minutes.',
              status,
            );
          if (status === 401 || status === 403)
            throw tagged(
              `Turso refused this server's platform API token (HTTP ${status}) when trying to ${what}; ` +
                `the operator must give DEPLOY_MCP_TURSO_API_TOKEN a valid token of organization "${api.org}". Tell them; retrying will not help.`,
              status,
            );
          if (status === 404)
            throw tagged(
              `Turso has no such database or organization (HTTP 404${said}) when trying to ${what}; ` +
                `if the database was deleted outside Deploy MCP, delete_resource it and create it again; if organization "${api.org}" is wrong, tell the operator (DEPLOY_MCP_TURSO_ORG).`,
              status,
            );
          if (status === 409)
            throw tagged(
              `Turso says it exists already (HTTP 409${said}) when trying to ${what}, in another group: ` +
                'create the resource under another name.',
              status,
            );
          if (status === 400)
            throw tagged(
              `Turso refused to ${what} (HTTP 400${said}); the server's Turso settings (DEPLOY_MCP_TURSO_REGIONS, ` +
                '_TOKEN_EXPIRATION) are the likely cause: pick another region, or tell the operator.',
              status,
            );
          throw tagged(`Turso refused to ${what} (HTTP ${status}${said}).`, status);
        } finally {
          clearTimeout(timer);
        }
      }
      throw tagged(`Turso: ${what} failed`, last.status); // not reached: the last attempt throws
    };
  },
} as pulumi.dynamic.ResourceProvider;

/** `fn` against the client, bounded, tried again on 5xx; errors as messages an agent can act on. */
export type Call = <T>(what: string, fn: (c: Client) => Promise<T>) => Promise<T>;

type TursoHelpers = {
  session(api: TursoApi): Call;
  mint(call: Call, inputs: TursoDatabaseInputs): Promise<string>;
};
