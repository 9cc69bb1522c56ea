// A real OAuth 2.0 authorization server for the introspection tests: oidc-provider (a certified
// OpenID Connect / OAuth 2.0 implementation) on loopback, issuing opaque access tokens by the
// client credentials grant, with introspection (RFC 7662) and revocation (RFC 7009) enabled.
// It runs inside a node:http server of ours, which counts every introspection call and can
// stop answering (`down()` closes the listener: connection refused) or answer 503.
//
// Clients: `gateway` (the introspecting client Lobby uses, client_secret_basic), `gateway-post`
// (the same with client_secret_post) and `app`
// (gets tokens; may ask for orders:read, orders:write, orders:admin). Resources (RFC 8707):
// https://api.test (the audience Lobby accepts), https://other.test (another API's), and
// https://short.test (the api's audience, tokens living SHORT_TTL_S seconds).
import { createServer, type Server } from 'node:http';
import Provider from 'oidc-provider';
import { request } from 'undici';

export const GATEWAY_CLIENT = { id: 'gateway', secret: 'gateway-secret-0123456789abcdef' };
/** The same, authenticating with client_secret_post. */
export const GATEWAY_POST_CLIENT = { id: 'gateway-post', secret: 'gateway-post-secret-0123456789' };
const APP_CLIENT = { id: 'app', secret: 'app-secret-0123456789abcdef' };
export const API_AUDIENCE = 'https://api.test';
export const SHORT_TTL_S = 2;
const SCOPES = 'orders:read orders:write orders:admin';

export interface OAuthServer {
  readonly issuer: string;
  readonly introspectionEndpoint: string;
  /** Introspection calls received so far (answered or not). */
  introspections: number;
  /** An opaque access token for `app` with these scopes, for `resource`. */
  token(scope: string, resource?: string): Promise<string>;
  /** Revokes a token (RFC 7009) as the `app` client. */
  revoke(token: string): Promise<void>;
  /** Introspection answers 503 (true) or normally (false). */
  failIntrospection(fail: boolean): void;
  /** Introspection requests get no answer at all (true) until this is set back (false). */
  stallIntrospection(stall: boolean): void;
  /** Stops listening and closes every connection: the server is down. */
  down(): Promise<void>;
  close(): Promise<void>;
}

export async function startOAuthServer(port: number): Promise<OAuthServer> {
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    scopes: ['openid', ...SCOPES.split(' ')],
    cookies: { keys: ['oauth-test-cookie-key'] },
    ttl: { ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) => token.resourceServer?.accessTokenTTL ?? 600 },
    clients: [
      { client_id: GATEWAY_CLIENT.id, client_secret: GATEWAY_CLIENT.secret, grant_types: [], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' },
      { client_id: GATEWAY_POST_CLIENT.id, client_secret: GATEWAY_POST_CLIENT.secret, grant_types: [], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_post' },
      { client_id: APP_CLIENT.id, client_secret: APP_CLIENT.secret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: SCOPES },
    ],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Only the gateway may introspect (it is the resource server's client).
      introspection: { enabled: true, allowedPolicy: (_ctx: unknown, client: { clientId: string }) => client.clientId === GATEWAY_CLIENT.id || client.clientId === GATEWAY_POST_CLIENT.id },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => API_AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (resource === API_AUDIENCE || resource === 'https://other.test') {
            return { scope: SCOPES, audience: resource, accessTokenTTL: 3600, accessTokenFormat: 'opaque' };
          }
          if (resource === 'https://short.test') return { scope: SCOPES, audience: API_AUDIENCE, accessTokenTTL: SHORT_TTL_S, accessTokenFormat: 'opaque' };
          throw new Error(`unknown resource ${resource}`);
        },
      },
    },
  });
  const callback = provider.callback();
  let failing = false;
  let stalled: (() => void)[] | null = null;
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/token/introspection')) {
      state.introspections++;
      if (failing) { req.resume(); res.writeHead(503, { 'content-type': 'text/plain' }).end('unavailable'); return; }
      if (stalled !== null) { stalled.push(() => callback(req, res)); return; }
    }
    callback(req, res);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', () => resolve()); });
  const basic = (c: { id: string; secret: string }) => 'Basic ' + Buffer.from(`${c.id}:${c.secret}`).toString('base64');
  let closed = false;
  const stop = () => new Promise<void>((resolve) => {
    if (closed) { resolve(); return; }
    closed = true;
    server.close(() => resolve());
    server.closeAllConnections();
  });
  const state: OAuthServer = {
    issuer,
    introspectionEndpoint: `${issuer}/token/introspection`,
    introspections: 0,
    async token(scope, resource = API_AUDIENCE) {
      const res = await request(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: basic(APP_CLIENT), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope, resource }).toString(),
      });
      const body = await res.body.json() as { access_token?: string; error?: string; error_description?: string };
      if (res.statusCode !== 200 || body.access_token === undefined) throw new Error(`token request failed: ${res.statusCode} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    async revoke(token) {
      const res = await request(`${issuer}/token/revocation`, {
        method: 'POST',
        headers: { authorization: basic(APP_CLIENT), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`revocation failed: ${res.statusCode}`);
    },
    failIntrospection(fail) { failing = fail; },
    stallIntrospection(stall) {
      if (stall) { stalled ??= []; return; }
      const held = stalled ?? [];
      stalled = null;
      for (const answer of held) answer();
    },
    down: stop,
    close: stop,
  };
  return state;
}
