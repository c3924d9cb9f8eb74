// A real OpenID provider for the identity tests: Panva's certified oidc-provider.
//
//   node provider.js SETTINGS.json [PORT]   prints "READY <issuer>" once listening on 127.0.0.1:PORT (0: any)
//
// SETTINGS: {"jwks": {"keys": [private JWKs]}, "audience": "https://relay.test/",
//            "ttl": 600, "alg": "RS256", "clients": [{"client_id", "client_secret", "roles"}
//            or {"client_id", "jwks": {"keys": [public JWKs]}, "roles"} (private_key_jwt)]}
// Clients use the client-credentials grant; access tokens are JWTs for the resource
// asked for (the audience by default) carrying the client's "roles" claim.
import fs from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const settings = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const roles = Object.fromEntries(settings.clients.map((c) => [c.client_id, c.roles || []]));
const server = http.createServer();

server.listen(Number(process.argv[3] || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    jwks: settings.jwks,
    clients: settings.clients.map(({ client_id, client_secret, jwks }) => ({
      client_id,
      ...(jwks ? { jwks, token_endpoint_auth_method: 'private_key_jwt' } : { client_secret }),
      grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
    })),
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => settings.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => ({
          scope: 'relay',
          audience: resource,
          accessTokenTTL: settings.ttl || 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: settings.alg || 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (ctx, token) => (roles[token.clientId]?.length ? { roles: roles[token.clientId] } : undefined),
  });
  server.on('request', provider.callback());
  process.stdout.write(`READY ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
