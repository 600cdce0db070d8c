// A certified OpenID Connect provider (panva/oidc-provider) for the browser tests: sign-in with
// the authorization-code flow and PKCE, and JWT access tokens for an API audience. Loopback
// only, accounts from OIDC_ACCOUNTS; any password is accepted (its development login page).
import Provider from 'oidc-provider';

const PORT = Number(process.env.OIDC_PORT ?? 8104);
const ISSUER = `http://127.0.0.1:${PORT}`;
const CLIENT_ID = process.env.OIDC_CLIENT_ID ?? 'followthrough';
const CLIENT_SECRET = process.env.OIDC_CLIENT_SECRET ?? 'followthrough-test-client-secret';
const REDIRECT_URI = process.env.OIDC_REDIRECT_URI ?? 'http://127.0.0.1:8000/signin/callback';
const SIGNED_OUT_URI = process.env.OIDC_SIGNED_OUT_URI ?? 'http://127.0.0.1:8000/signin';
// {"cora": {"role": "coordinator", "team": "cardiology"}, ...}
const ACCOUNTS = JSON.parse(process.env.OIDC_ACCOUNTS ?? '{}');
const ROLE_CLAIM = process.env.OIDC_ROLE_CLAIM ?? 'role';
const TEAM_CLAIM = process.env.OIDC_TEAM_CLAIM ?? 'team';

function claimsOf(id) {
  const account = ACCOUNTS[id] ?? {};
  return { sub: id, name: id, [ROLE_CLAIM]: account.role, [TEAM_CLAIM]: account.team };
}

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      post_logout_redirect_uris: [SIGNED_OUT_URI],
      grant_types: ['authorization_code', 'client_credentials'],
      response_types: ['code'],
      scope: 'openid profile api',
    },
  ],
  scopes: ['openid', 'profile', 'api'],
  pkce: { required: () => true },
  conformIdTokenClaims: false, // role and team in the ID token, as Entra ID and Keycloak can do
  claims: { openid: ['sub'], profile: ['name', ROLE_CLAIM, TEAM_CLAIM] },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Access tokens for any audience asked for: the tests ask for a wrong one too.
      getResourceServerInfo: (ctx, resource) => ({
        scope: 'api',
        audience: resource,
        accessTokenFormat: 'jwt',
      }),
    },
  },
  // The test client is first-party: no consent screen.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile');
    grant.addOIDCClaims(['sub', 'name', ROLE_CLAIM, TEAM_CLAIM]);
    await grant.save();
    return grant;
  },
  async extraTokenClaims(ctx, token) {
    // A machine caller's token (client credentials) carries the auditor role.
    return token.kind === 'ClientCredentials' ? { [ROLE_CLAIM]: 'auditor' } : undefined;
  },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => claimsOf(id) }),
  cookies: { keys: ['followthrough-identity-sandbox'] },
  ttl: { AccessToken: 600, ClientCredentials: 600, IdToken: 600 },
});

provider.listen(PORT, '127.0.0.1', () => {
  console.log(`OpenID Connect provider on ${ISSUER}`);
});
