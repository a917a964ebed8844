// A real MCP client for the end-to-end test: the official TypeScript SDK's Client and
// StreamableHTTPClientTransport with its OAuth support. Only the browser is simulated:
// redirectToAuthorization follows the redirects in code, through mcpauth's consent page
// and the upstream provider's login and consent pages, to this script's loopback
// redirect URI, exactly as a browser would (cookies kept per host, forms posted).
//
// Flow: connect (401) → discovery → registration (dynamic, or a Client ID Metadata
// Document URL) → authorize → token → tools/list → whoami; wait for the access token to
// expire → whoami again, which makes the SDK refresh on the 401 → success again.
//
// Environment:
//   MCP_URL             the MCP endpoint (required)
//   EXPECT_ISSUER       the authorization server's issuer; iss must equal it (required)
//   CLIENT_MODE         dcr (default), cimd, or static (a pre-registered public client,
//                       such as an MCPClient with a loopback redirect URI)
//   CIMD_URL            the client_id URL in cimd mode
//   CLIENT_ID           the client ID in static mode
//   IDP_USER_LOGIN, IDP_USER_PASSWORD  the upstream user's credentials (required)
//   EXPECT_SUB, EXPECT_EMAIL           what whoami must return (unchecked when unset)
//   CLIENT_METADATA     JSON merged into the registered client metadata, to try what
//                       other MCP hosts send (a field set to null is left out)
//   EXPIRY_WAIT_MS      how long to wait for the access token to expire (default 6500;
//                       0 skips the expiry and refresh step, for a server whose tokens
//                       live longer, such as `make dev`)
//   TIMEOUT_MS          the whole run's deadline (default 45000)
//   STEP_UP_TOOL        a tool the first token's scope does not cover: call it, expect
//                       403 insufficient_scope, authorize again with the challenge's
//                       scope, and call it again (the step-up; summary field stepUp)
// On success it prints one JSON summary on stdout and exits 0; on any failure it says
// why on stderr and exits 1.
import { randomBytes } from 'node:crypto';
import http from 'node:http';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError, auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const env = (name, def) => {
  const v = process.env[name] || def;
  if (v === undefined) fail(`${name} is required`);
  return v;
};

function log(...args) {
  console.error('client:', ...args);
}

function fail(msg) {
  console.error(`client: FAIL: ${msg}`);
  process.exit(1);
}

const cfg = {
  mcpURL: env('MCP_URL'),
  issuer: env('EXPECT_ISSUER'),
  mode: env('CLIENT_MODE', 'dcr'),
  cimdURL: process.env.CIMD_URL,
  clientID: process.env.CLIENT_ID,
  login: env('IDP_USER_LOGIN'),
  password: env('IDP_USER_PASSWORD'),
  sub: process.env.EXPECT_SUB,
  email: process.env.EXPECT_EMAIL,
  expiryWait: Number(env('EXPIRY_WAIT_MS', '6500')),
  timeout: Number(env('TIMEOUT_MS', '45000')),
  metadata: JSON.parse(process.env.CLIENT_METADATA || '{}'),
  stepUpTool: process.env.STEP_UP_TOOL,
};
if (!['dcr', 'cimd', 'static'].includes(cfg.mode)) fail(`CLIENT_MODE must be dcr, cimd or static, not ${cfg.mode}`);
if (cfg.mode === 'cimd' && !cfg.cimdURL) fail('CIMD_URL is required in cimd mode');
if (cfg.mode === 'static' && !cfg.clientID) fail('CLIENT_ID is required in static mode');
setTimeout(() => fail(`no result after ${cfg.timeout} ms`), cfg.timeout).unref();

// ---------------------------------------------------------------------------------------
// The simulated browser: a cookie jar and a redirect-following, form-posting loop.

// CookieJar keeps cookies per host name, as browsers do (cookies ignore the port), with
// their path; expired or deleted cookies are dropped.
class CookieJar {
  constructor() {
    this.cookies = new Map(); // host -> Map(name -> {value, path, expires})
  }

  store(url, setCookies) {
    const host = url.hostname;
    if (!this.cookies.has(host)) this.cookies.set(host, new Map());
    const jar = this.cookies.get(host);
    for (const line of setCookies) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expires = Infinity;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        switch (k.toLowerCase()) {
          case 'path':
            path = v || '/';
            break;
          case 'max-age':
            expires = Date.now() + Number(v) * 1000;
            break;
          case 'expires':
            if (expires === Infinity) expires = Date.parse(v);
            break;
          default:
        }
      }
      if (expires <= Date.now()) jar.delete(name);
      else jar.set(name, { value, path, expires });
    }
  }

  header(url) {
    const jar = this.cookies.get(url.hostname);
    if (!jar) return undefined;
    const now = Date.now();
    const out = [];
    for (const [name, c] of jar) {
      if (c.expires <= now) continue;
      if (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)) {
        out.push(`${name}=${c.value}`);
      }
    }
    return out.length ? out.join('; ') : undefined;
  }
}

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_, e) => {
    const lower = e.toLowerCase();
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return String.fromCodePoint(parseInt(lower.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[lower];
  });
}

function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:-]+)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
    out[m[1].toLowerCase()] = decodeEntities(m[3] ?? m[4]);
  }
  return out;
}

// parseForm returns the page's first POST form: its action, its inputs (name → value)
// and its submit buttons.
function parseForm(html, pageURL) {
  const m = html.match(/<form\b[^>]*>([\s\S]*?)<\/form>/i);
  if (!m) return undefined;
  const formTag = m[0].slice(0, m[0].indexOf('>') + 1);
  const a = attrs(formTag);
  const inputs = [];
  for (const t of m[1].matchAll(/<input\b[^>]*>/gi)) {
    const ia = attrs(t[0]);
    if (ia.name) inputs.push([ia.name, ia.value ?? '', ia.type ?? 'text']);
  }
  const buttons = [];
  for (const t of m[1].matchAll(/<button\b[^>]*>/gi)) {
    const ba = attrs(t[0]);
    if (ba.name) buttons.push([ba.name, ba.value ?? '']);
  }
  return {
    method: (a.method || 'get').toLowerCase(),
    action: new URL(a.action || pageURL.href, pageURL),
    inputs,
    buttons,
  };
}

// browse follows the authorization request like a browser until it is redirected to
// redirectURL, and returns that final URL's query parameters (after delivering the
// request to the loopback listener, as a browser would). It answers each page it meets:
// mcpauth's consent page (Approve), the upstream login form (the test user's
// credentials) and the upstream consent form (Continue).
async function browse(startURL, redirectURL, jar) {
  const pages = [];
  const hops = [];
  let url = new URL(startURL);
  let method = 'GET';
  let body;
  for (let i = 0; i < 30; i++) {
    if (url.origin === redirectURL.origin && url.pathname === redirectURL.pathname) {
      hops.push(`GET ${url.origin}${url.pathname} (loopback redirect URI)`);
      const res = await fetch(url);
      if (!res.ok) throw new Error(`the loopback redirect URI answered ${res.status}`);
      return { params: Object.fromEntries(url.searchParams), pages, hops };
    }
    const headers = {};
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    jar.store(url, res.headers.getSetCookie());
    hops.push(`${method} ${url.origin}${url.pathname} -> ${res.status}`);
    if ([301, 302, 303, 307, 308].includes(res.status)) {
      const loc = res.headers.get('location');
      if (!loc) throw new Error(`${res.status} without Location from ${url.origin}${url.pathname}`);
      await res.arrayBuffer();
      url = new URL(loc, url);
      if (res.status !== 307 && res.status !== 308) {
        method = 'GET';
        body = undefined;
      }
      continue;
    }
    const text = await res.text();
    if (res.status !== 200) {
      throw new Error(`${method} ${url.origin}${url.pathname} answered ${res.status}: ${text.slice(0, 500)}`);
    }
    const form = parseForm(text, url);
    if (!form || form.method !== 'post') {
      throw new Error(`${url.origin}${url.pathname} showed a page without a form: ${text.slice(0, 500)}`);
    }
    const data = new URLSearchParams();
    const names = new Set(form.inputs.map(([n]) => n));
    if (names.has('csrf_token') && form.buttons.some(([n, v]) => n === 'decision' && v === 'approve')) {
      // mcpauth's consent page: every hidden field (the request and the CSRF token),
      // and the Approve button.
      pages.push({ page: 'mcpauth-consent', url: `${url.origin}${url.pathname}`, clientShown: text.includes(redirectURL.host) });
      for (const [n, v] of form.inputs) data.append(n, v);
      data.append('decision', 'approve');
    } else if (names.has('login') && names.has('password')) {
      pages.push({ page: 'upstream-login', url: `${url.origin}${url.pathname}` });
      for (const [n, v] of form.inputs) {
        if (n === 'login') data.append(n, cfg.login);
        else if (n === 'password') data.append(n, cfg.password);
        else data.append(n, v);
      }
    } else if (form.inputs.some(([n, v]) => n === 'prompt' && v === 'consent')) {
      pages.push({ page: 'upstream-consent', url: `${url.origin}${url.pathname}` });
      for (const [n, v] of form.inputs) data.append(n, v);
    } else {
      throw new Error(`unknown form at ${url.origin}${url.pathname}: ${text.slice(0, 500)}`);
    }
    url = form.action;
    method = 'POST';
    body = data.toString();
  }
  throw new Error('more than 30 hops without reaching the redirect URI');
}

// ---------------------------------------------------------------------------------------
// The OAuthClientProvider: what an MCP host application implements.

class E2EProvider {
  constructor(redirectURL) {
    this._redirectURL = redirectURL;
    this.jar = new CookieJar();
    this.savedTokens = [];
    this.savedClients = [];
    this.invalidated = [];
    this.browsed = undefined;
    this.stateSent = undefined;
    if (cfg.mode === 'cimd') this.clientMetadataUrl = cfg.cimdURL;
    // A pre-registered client: the SDK registers nothing when it already has one.
    if (cfg.mode === 'static') this._client = { client_id: cfg.clientID };
  }

  get redirectUrl() {
    return this._redirectURL.href;
  }

  // What the SDK registers dynamically: a public native client on a loopback redirect
  // URI, as desktop MCP hosts register.
  get clientMetadata() {
    const m = {
      client_name: 'mcpauth e2e client',
      redirect_uris: [this._redirectURL.href],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      ...cfg.metadata,
    };
    return Object.fromEntries(Object.entries(m).filter(([, v]) => v !== null));
  }

  state() {
    this.stateSent = randomBytes(16).toString('base64url');
    return this.stateSent;
  }

  clientInformation() {
    return this._client;
  }

  saveClientInformation(info) {
    this._client = info;
    this.savedClients.push(info);
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
    this.savedTokens.push(tokens);
    log(`saveTokens #${this.savedTokens.length}: expires_in=${tokens.expires_in} refresh_token=${tokens.refresh_token ? 'yes' : 'no'} scope=${tokens.scope}`);
  }

  saveCodeVerifier(v) {
    this._verifier = v;
  }

  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier saved');
    return this._verifier;
  }

  invalidateCredentials(scope) {
    log(`invalidateCredentials(${scope})`);
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
  }

  // The browser step, done in code.
  async redirectToAuthorization(authorizationURL) {
    log(`authorize: ${authorizationURL.origin}${authorizationURL.pathname} client_id=${authorizationURL.searchParams.get('client_id')} scope=${authorizationURL.searchParams.get('scope')} resource=${authorizationURL.searchParams.get('resource')}`);
    this.authorizationRequest = Object.fromEntries(
      [...authorizationURL.searchParams].filter(([k]) => !['code_challenge', 'state'].includes(k)),
    );
    this.lastAuthorizationRequest = this.authorizationRequest;
    this.browsed = await browse(authorizationURL, this._redirectURL, this.jar);
    for (const h of this.browsed.hops) log(`  ${h}`);
  }
}

// ---------------------------------------------------------------------------------------

// The loopback redirect URI's listener (RFC 8252 §7.3): it only acknowledges; browse
// already has the parameters.
const callback = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('Signed in. You can close this window.\n');
});
await new Promise((resolve) => callback.listen(0, '127.0.0.1', resolve));
const redirectURL = new URL(`http://127.0.0.1:${callback.address().port}/callback`);

// Every request the SDK makes, for the summary (paths only: queries carry secrets).
// The WWW-Authenticate of every 403 is kept too: the step-up reads its scope.
const requests = [];
const challenges403 = [];
const tracingFetch = async (input, init) => {
  const u = new URL(input instanceof Request ? input.url : input);
  const res = await fetch(input, init);
  requests.push(`${init?.method ?? 'GET'} ${u.pathname} ${res.status}`);
  if (res.status === 403) challenges403.push(res.headers.get('www-authenticate') ?? '');
  return res;
};

const provider = new E2EProvider(redirectURL);
const mcpURL = new URL(cfg.mcpURL);
const newTransport = () => new StreamableHTTPClientTransport(mcpURL, { authProvider: provider, fetch: tracingFetch });

function identityOf(result, label) {
  if (result.isError) throw new Error(`${label}: whoami failed: ${JSON.stringify(result.content)}`);
  const text = result.content?.find((c) => c.type === 'text')?.text ?? '';
  let info;
  try {
    info = JSON.parse(text);
  } catch {
    throw new Error(`${label}: whoami returned no JSON: ${text.slice(0, 300)}`);
  }
  if (!info.sub) throw new Error(`${label}: whoami returned no sub: ${text.slice(0, 300)}`);
  if (cfg.sub && info.sub !== cfg.sub) throw new Error(`${label}: whoami says sub ${info.sub}, want ${cfg.sub}`);
  if (cfg.email && info.email !== cfg.email) throw new Error(`${label}: whoami says email ${info.email}, want ${cfg.email}`);
  return info;
}

// checkRedirect checks the parameters the browser step brought back to the client.
function checkRedirect(cb) {
  if (cb.error) throw new Error(`authorization failed: ${cb.error}: ${cb.error_description ?? ''}`);
  if (!cb.code) throw new Error(`no code in the redirect: ${JSON.stringify(cb)}`);
  if (cb.state !== provider.stateSent) throw new Error(`state ${cb.state} does not match the one sent (${provider.stateSent})`);
  // RFC 9207: the SDK does not check iss yet, so the application does.
  if (cb.iss !== cfg.issuer) throw new Error(`iss ${cb.iss} is not the issuer ${cfg.issuer}`);
}

// stepUp calls a tool the token's scope does not cover. The MCP server answers 403
// error="insufficient_scope" with the scope the call needs. SDK 1.32 answers that 403
// by refreshing the token (a refresh cannot widen the scope), retries, and gives up
// when the same challenge comes back; the host then does what the challenge asks: a
// new authorization with its scope (the user sees the consent page again), and the
// call again with the new token.
async function stepUp(client, tool, toolsBefore) {
  const tokensBefore = provider.savedTokens.length;
  const firstAuthorization = provider.authorizationRequest;
  let firstError;
  try {
    const res = await client.callTool({ name: tool, arguments: {} });
    throw new Error(`${tool} answered without a step-up: ${JSON.stringify(res)}`);
  } catch (err) {
    if (!(err instanceof StreamableHTTPError) || err.code !== 403) throw err;
    firstError = err.message;
  }
  const challenge = challenges403.at(-1);
  if (!challenge || !/error="insufficient_scope"/.test(challenge)) throw new Error(`the 403 has no insufficient_scope challenge: ${challenge}`);
  const scope = /scope="([^"]*)"/.exec(challenge)?.[1];
  const resourceMetadata = /resource_metadata="([^"]*)"/.exec(challenge)?.[1];
  if (!scope || !resourceMetadata) throw new Error(`the challenge names no scope or resource_metadata: ${challenge}`);
  log(`step-up: ${tool} needs scope "${scope}"`);

  provider.invalidateCredentials('tokens');
  provider.browsed = undefined;
  const opts = { serverUrl: mcpURL, scope, resourceMetadataUrl: new URL(resourceMetadata), fetchFn: tracingFetch };
  if ((await auth(provider, opts)) !== 'REDIRECT') throw new Error('the step-up did not start an authorization');
  const cb = provider.browsed.params;
  checkRedirect(cb);
  if ((await auth(provider, { ...opts, authorizationCode: cb.code })) !== 'AUTHORIZED') throw new Error('the step-up code exchange failed');

  const again = new Client({ name: 'mcpauth-e2e', version: '1.0.0' });
  await again.connect(newTransport());
  const toolsAfter = (await again.listTools()).tools.map((t) => t.name).sort();
  const res = await again.callTool({ name: tool, arguments: {} });
  await again.close();
  if (res.isError) throw new Error(`${tool} failed after the step-up: ${JSON.stringify(res.content)}`);
  const text = res.content?.find((c) => c.type === 'text')?.text ?? '';
  const result = JSON.parse(text);
  const identity = identityOf({ content: [{ type: 'text', text: JSON.stringify(result.userinfo) }] }, `${tool} after the step-up`);
  const tokensSavedDuring = provider.savedTokens.slice(tokensBefore);
  provider.authorizationRequest = firstAuthorization;
  return {
    tool,
    firstError,
    challenge,
    authorizationRequest: provider.lastAuthorizationRequest,
    pages: provider.browsed.pages,
    toolsBefore,
    toolsAfter,
    identity,
    scopes: result.scopes,
    tokenScopes: tokensSavedDuring.map((t) => t.scope),
  };
}

async function main() {
  // 1. Connect without a token: 401, discovery, registration, then the browser step.
  const first = new Client({ name: 'mcpauth-e2e', version: '1.0.0' });
  let transport = newTransport();
  try {
    await first.connect(transport);
    throw new Error('connected without authorization: the MCP server did not answer 401');
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  await first.close();
  if (!provider.browsed) throw new Error('the SDK never called redirectToAuthorization');
  const cb = provider.browsed.params;
  checkRedirect(cb);
  await transport.finishAuth(cb.code);
  if (provider.savedTokens.length !== 1) throw new Error(`finishAuth saved ${provider.savedTokens.length} token sets, want 1`);
  const initial = provider.savedTokens[0];
  if (!initial.refresh_token) throw new Error('the token response has no refresh token: the SDK could not refresh');

  // 2. Reconnect with the token and use the tools.
  const client = new Client({ name: 'mcpauth-e2e', version: '1.0.0' });
  transport = newTransport();
  await client.connect(transport);
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  if (!names.includes('whoami')) throw new Error(`tools/list has no whoami: ${names}`);
  const before = identityOf(await client.callTool({ name: 'whoami', arguments: {} }), 'first call');
  log(`whoami: ${JSON.stringify(before)}`);
  const stepped = cfg.stepUpTool ? await stepUp(client, cfg.stepUpTool, names) : undefined;

  // 3. Let the access token expire; the next call gets 401 and the SDK refreshes. Any
  // token saved before the wait is older than the wait when the call is made.
  let after;
  let refreshed = [];
  if (cfg.expiryWait > 0) {
    const savedBefore = provider.savedTokens.length;
    log(`waiting ${cfg.expiryWait} ms for the access token to expire`);
    await new Promise((r) => setTimeout(r, cfg.expiryWait));
    after = identityOf(await client.callTool({ name: 'whoami', arguments: {} }), 'call after expiry');
    refreshed = provider.savedTokens.slice(savedBefore);
    if (refreshed.length === 0) throw new Error('the call after expiry succeeded without a refresh: the old access token was still accepted');
    const latest = provider.savedTokens.at(-1);
    if (latest.access_token === initial.access_token) throw new Error('the refresh returned the same access token');
    if (latest.refresh_token === initial.refresh_token) throw new Error('the refresh token was not rotated');
  }
  await client.close();
  const latest = provider.savedTokens.at(-1);

  const summary = {
    mode: cfg.mode,
    clientID: provider.clientInformation()?.client_id,
    registered: provider.savedClients.map((c) => ({
      client_id: c.client_id,
      token_endpoint_auth_method: c.token_endpoint_auth_method,
      grant_types: c.grant_types,
      application_type: c.application_type,
    })),
    authorizationRequest: provider.authorizationRequest,
    iss: cb.iss,
    pages: provider.browsed.pages,
    tools: names,
    identity: before,
    identityAfterRefresh: after,
    tokensSaved: provider.savedTokens.length,
    refreshed: refreshed.length,
    accessTokenChanged: latest.access_token !== initial.access_token,
    refreshTokenRotated: latest.refresh_token !== initial.refresh_token,
    expiresIn: initial.expires_in,
    stepUp: stepped,
    invalidated: provider.invalidated,
    requests,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main()
  .then(() => {
    callback.close();
    process.exit(0);
  })
  .catch((err) => {
    if (requests.length) log(`requests so far:\n  ${requests.join('\n  ')}`);
    fail(err?.stack ?? String(err));
  });
