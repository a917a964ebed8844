// The end-to-end test's upstream identity provider: a real OpenID provider that nobody
// in this project wrote (panva's oidc-provider), with one confidential client (the
// mcpauth authorization server) and one test user. Its login and consent pages are the
// library's own development interactions (plain HTML forms); the MCP client script
// signs in through them as a browser would.
//
// Configuration comes from the environment:
//   IDP_CLIENT_ID, IDP_CLIENT_SECRET  the authorization server's upstream credentials
//   IDP_REDIRECT_URI                  the authorization server's callback URL
//   IDP_USER_LOGIN, IDP_USER_PASSWORD the test user's login and password
//   IDP_USER_SUB, IDP_USER_EMAIL, IDP_USER_NAME  the test user's claims
//   IDP_PORT                          the port (default 0: a free one)
//   IDP_HOST                          the address to listen on and name in the issuer
//                                     (default 127.0.0.1; the cluster test uses the
//                                     cluster bridge's address, which pods reach too)
// When it listens, it prints one JSON line on stdout:
//   {"issuer": "http://127.0.0.1:PORT", "userinfo_endpoint": "..."}
// It runs until it is killed.
import http from 'node:http';
import { URLSearchParams } from 'node:url';

import Provider from 'oidc-provider';

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`upstream-idp: ${name} is required`);
    process.exit(2);
  }
  return v;
}

const client = {
  client_id: required('IDP_CLIENT_ID'),
  client_secret: required('IDP_CLIENT_SECRET'),
  redirect_uris: [required('IDP_REDIRECT_URI')],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};
const user = {
  login: required('IDP_USER_LOGIN'),
  password: required('IDP_USER_PASSWORD'),
  sub: required('IDP_USER_SUB'),
  email: required('IDP_USER_EMAIL'),
  name: required('IDP_USER_NAME'),
};

// The development login form accepts any login as the account ID and ignores the
// password; this check in front of it makes the test user's credentials matter, as a
// real provider's would, and turns the login into the account ID (the user's sub).
async function checkPassword(ctx, next) {
  if (ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)) {
    const chunks = [];
    for await (const c of ctx.req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString('utf8');
    const form = new URLSearchParams(raw);
    if (form.get('prompt') === 'login' && (form.get('login') !== user.login || form.get('password') !== user.password)) {
      ctx.status = 401;
      ctx.type = 'text/plain';
      ctx.body = 'wrong login or password';
      return;
    }
    if (form.get('prompt') === 'login') form.set('login', user.sub);
    // Hand the body on to the provider's own parser (it warns once that it was read).
    ctx.req.body = form.toString();
  }
  await next();
}

const server = http.createServer();
const host = process.env.IDP_HOST || '127.0.0.1';
server.listen(Number(process.env.IDP_PORT || 0), host, () => {
  const { port } = server.address();
  const issuer = `http://${host}:${port}`;
  const provider = new Provider(issuer, {
    clients: [client],
    async findAccount(_ctx, id) {
      if (id !== user.sub) return undefined;
      return {
        accountId: user.sub,
        async claims() {
          return { sub: user.sub, email: user.email, email_verified: true, name: user.name };
        },
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['mcpauth-e2e-cookie-signing-key-not-secret'] },
    ttl: {
      IdToken: 60,
      AccessToken: 600,
      AuthorizationCode: 60,
      Interaction: 300,
      Session: 600,
      Grant: 600,
    },
  });
  provider.use(checkPassword);
  provider.on('server_error', (_ctx, err) => console.error('upstream-idp: server_error', err));
  provider.on('grant.error', (_ctx, err) => console.error('upstream-idp: grant.error', err.message, err.error_description ?? ''));
  provider.on('authorization.error', (_ctx, err) => console.error('upstream-idp: authorization.error', err.message, err.error_description ?? ''));
  server.on('request', provider.callback());
  // Ready once discovery answers; the endpoints printed are the ones it publishes.
  fetch(`${issuer}/.well-known/openid-configuration`)
    .then((r) => r.json())
    .then((d) => console.log(JSON.stringify({ issuer: d.issuer, userinfo_endpoint: d.userinfo_endpoint })))
    .catch((err) => {
      console.error('upstream-idp: discovery failed', err);
      process.exit(1);
    });
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
