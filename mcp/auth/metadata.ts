import { SCOPE } from './authorize.ts';
import type { AuthContext } from './context.ts';

/** Where the protected resource metadata of /mcp lives (RFC 9728 §3.1: path-suffixed form). */
export function resourceMetadataUrl(issuer: string): string {
  return `${issuer}/.well-known/oauth-protected-resource/mcp`;
}

/** RFC 9728 protected resource metadata for /mcp. */
export function protectedResourceMetadata(ctx: AuthContext) {
  return {
    resource: ctx.resource,
    authorization_servers: [ctx.issuer],
    scopes_supported: [SCOPE],
    bearer_methods_supported: ['header'],
    resource_name: 'Deploy MCP',
  };
}

/** RFC 8414 authorization server metadata. */
export function authorizationServerMetadata(ctx: AuthContext) {
  return {
    issuer: ctx.issuer,
    authorization_endpoint: `${ctx.issuer}/authorize`,
    token_endpoint: `${ctx.issuer}/token`,
    registration_endpoint: `${ctx.issuer}/register`,
    revocation_endpoint: `${ctx.issuer}/revoke`,
    scopes_supported: [SCOPE],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['none'],
    revocation_endpoint_auth_methods_supported: ['none'],
    client_id_metadata_document_supported: true,
    authorization_response_iss_parameter_supported: true,
  };
}
