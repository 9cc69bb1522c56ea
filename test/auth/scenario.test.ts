// The `jwt` load-test scenario stays valid: its Lobby overlay compiles, and its token passes
// the route's checks (signature, issuer, audience, scope) for decades to come.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenario } from '../../loadtest/scenario.js';
import { lobbyConfigObject } from '../../loadtest/lobby.js';
import { compileConfig } from '../../src/control/compile.js';
import { TokenVerifier } from '../../src/data/auth/jwt.js';
import { bearerToken, hasScopes } from '../../src/data/auth/extract.js';
import type { AuthJwtFilterConfig } from '../../src/shared/auth-config.js';

describe('loadtest scenario jwt', () => {
  it('compiles, and its token is accepted by the route', () => {
    const scenario = loadScenario('jwt');
    const raw = lobbyConfigObject({ host: '127.0.0.1', port: 18080, upstreamUrl: 'http://127.0.0.1:18081', upstreamConnections: 64, overlay: scenario.lobbyConfig });
    const config = compileConfig(raw, 'jwt.yaml');
    assert.equal(config.routes.length, 1);
    const filter = config.routes[0].filters.find((f) => f.name === 'auth-jwt');
    assert.ok(filter, 'the route authenticates');
    const { provider, scopes } = filter.config as AuthJwtFilterConfig;
    const token = bearerToken(scenario.headers.authorization);
    assert.ok(token);
    const result = new TokenVerifier(provider!.spec, provider!.keys).verify(token, Date.now());
    assert.ok(result.ok, result.ok ? '' : result.code);
    assert.ok(result.exp > Date.now() / 1000 + 20 * 365 * 86400, 'the token outlives the repository');
    assert.ok(hasScopes(result.scopes, scopes));
    assert.equal(result.headers.length, 6, 'three identity headers injected');
  });
});
