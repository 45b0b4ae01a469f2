// A real OpenID provider for pgmoat's tests: oidc-provider (OpenID-certified) on loopback over HTTPS.
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// CONFIG.json (written by the test):
//   {
//     "cert": "server.crt", "key": "server.key",       // PEM, from the test CA (required)
//     "host": "127.0.0.1", "port": 0,                 // 0: a free port; the issuer is https://HOST:PORT
//     "audience": "pgmoat",                           // "aud" of every access token (a JWT)
//     "resource": "urn:pgmoat:gateway",               // RFC 8707 resource indicator the audience stands for
//     "alg": "ES256",                                 // signing algorithm (ES256, ES384, RS256, PS256, EdDSA, ...)
//     "access_token_ttl": 300,                        // seconds; a client may set its own
//     "jwks_max_age": 300,                            // Cache-Control max-age on /jwks (default: none)
//     "device_interval": 5,                           // seconds between device-code polls (RFC 8628 "interval")
//     "device_code_ttl": 600,                         // seconds a device code lives
//     "admin_token": "...",                           // bearer token of the /_admin endpoints (required)
//     "clients": [
//       {"client_id": "agent-1", "client_secret": "s3cret", "grant": "client_credentials",
//        "claims": {"groups": ["agents"]}, "access_token_ttl": 60},
//       {"client_id": "pgmoat-cli", "grant": "device_code"}
//     ],
//     "accounts": {"alice": {"password": "pw", "claims": {"email": "alice@example.com", "groups": ["dba"]}}}
//   }
//
// Access tokens are JWTs ("accessTokenFormat: jwt" of the one resource server, resolved by default so a client
// need not send "resource"), carrying the client's or the account's configured claims (groups, email, ...).
// The device flow (RFC 8628) is enabled; a person approves a code on the provider's own pages: GET
// verification_uri_complete, POST the confirm form, sign in (login + password checked against "accounts"),
// consent. Nothing else is needed than plain HTTP requests with a cookie jar.
//
// Key rotation, on the admin endpoints (Authorization: Bearer ADMIN_TOKEN):
//   POST /_admin/rotate   a new signing key becomes current; older ones stay published in the JWKS
//   POST /_admin/retire   every key but the current one leaves the JWKS
//   GET  /_admin/keys     {"current": kid, "published": [kid...]}
// and for the device flow: POST /_admin/slow_down (the next poll is answered "slow_down"), GET /_admin/polls;
//   GET  /_admin/stats    {"jwks_fetches": N}
// State (grants, device codes, sessions) is kept in memory across a rotation.
//
// When ready it prints one line of JSON on stdout: {"issuer", "port", "kid"}; logs go to stderr.
// SIGTERM or SIGINT stops it.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

// stdout carries only the ready line; the library's notices go to stderr with the logs.
console.info = console.error;

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
for (const k of ['cert', 'key', 'admin_token']) {
  if (!cfg[k]) {
    console.error(`provider: config needs "${k}"`);
    process.exit(2);
  }
}
const host = cfg.host || '127.0.0.1';
const audience = cfg.audience || 'pgmoat';
const resource = cfg.resource || 'urn:pgmoat:gateway';
const alg = cfg.alg || 'ES256';
const defaultTtl = cfg.access_token_ttl || 300;
const clients = cfg.clients || [];
const accounts = cfg.accounts || {};
const cookieKeys = [randomBytes(32).toString('hex')];

// A new private JWK for alg, with a kid of its own.
function newKey() {
  let pair;
  if (alg.startsWith('RS') || alg.startsWith('PS')) pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  else if (alg === 'ES256') pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  else if (alg === 'ES384') pair = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  else if (alg === 'ES512') pair = generateKeyPairSync('ec', { namedCurve: 'P-521' });
  else if (alg === 'EdDSA') pair = generateKeyPairSync('ed25519');
  else throw new Error(`provider: unsupported alg ${alg}`);
  const jwk = pair.privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `k-${randomBytes(6).toString('hex')}`, alg, use: 'sig' };
}

// The signing keys, current first.
let keys = [newKey()];

function clientByID(id) {
  return clients.find((c) => c.client_id === id);
}

function clientMetadata(c) {
  const base = { client_id: c.client_id, id_token_signed_response_alg: alg };
  if (c.grant === 'client_credentials') {
    return {
      ...base, client_secret: c.client_secret, grant_types: ['client_credentials'], response_types: [],
      redirect_uris: [], token_endpoint_auth_method: c.auth_method || 'client_secret_basic',
    };
  }
  if (c.grant === 'device_code') {
    return {
      ...base, grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [], redirect_uris: [], token_endpoint_auth_method: 'none',
    };
  }
  throw new Error(`provider: client ${c.client_id}: grant must be client_credentials or device_code`);
}

// RFC 8628 polling, which oidc-provider leaves to the client: the device authorization answer carries
// "interval", and a poll sooner than its code's interval (or any poll after POST /_admin/slow_down) is
// answered "slow_down", after which that code's interval is 5 s longer (section 3.5). Every poll is kept
// for GET /_admin/polls. GETs of the JWKS are counted for GET /_admin/stats, and answered with
// "Cache-Control: public, max-age=N" when the config sets "jwks_max_age": N.
const deviceInterval = cfg.device_interval || 5;
const pollState = new Map(); // device_code -> {interval, last}
const polls = []; // {t, error}
let slowDownNext = false;
let jwksFetches = 0;

async function testHooks(ctx, next) {
  if (ctx.method === 'POST' && ctx.path === '/token' && ctx.is('application/x-www-form-urlencoded')) {
    // Read the form here (oidc-provider takes an already read body from req.body).
    const chunks = [];
    let n = 0;
    for await (const c of ctx.req) {
      n += c.length;
      if (n > 57344) ctx.throw(413);
      chunks.push(c);
    }
    ctx.req.body = Buffer.concat(chunks).toString('utf8');
    const form = new URLSearchParams(ctx.req.body);
    const code = form.get('device_code');
    if (form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:device_code' && code) {
      const now = Date.now() / 1000;
      const st = pollState.get(code) || { interval: deviceInterval, last: 0 };
      pollState.set(code, st);
      if (slowDownNext || now - st.last < st.interval - 0.05) {
        slowDownNext = false;
        st.last = now;
        st.interval += 5;
        polls.push({ t: now, error: 'slow_down' });
        ctx.status = 400;
        ctx.set('cache-control', 'no-store');
        ctx.body = { error: 'slow_down', error_description: `poll at most every ${st.interval} s` };
        return;
      }
      st.last = now;
      await next();
      polls.push({ t: now, error: (ctx.body && ctx.body.error) || null });
      return;
    }
  }
  await next();
  if (ctx.path === '/jwks' && ctx.status === 200) {
    jwksFetches += 1;
    if (cfg.jwks_max_age !== undefined) ctx.set('cache-control', `public, max-age=${cfg.jwks_max_age}`);
  }
  if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200 && ctx.body && ctx.body.device_code) {
    ctx.body = { ...ctx.body, interval: deviceInterval };
  }
}

// An access token lives as long as its client's access_token_ttl (set on the resource server), else the default.
function resourceTtl(ctx, token) {
  return (token.resourceServer && token.resourceServer.accessTokenTTL) || defaultTtl;
}

function build(issuer) {
  const provider = new Provider(issuer, {
    clients: clients.map(clientMetadata),
    jwks: { keys },
    cookies: { keys: cookieKeys },
    findAccount(ctx, id) {
      const a = accounts[id];
      if (!a) return undefined;
      return { accountId: id, claims: () => ({ sub: id, ...(a.claims || {}) }) };
    },
    claims: {
      openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, indicator, client) {
          if (indicator !== resource) throw new errors.InvalidTarget();
          const c = clientByID(client.clientId);
          return {
            scope: 'pgmoat', audience, accessTokenFormat: 'jwt',
            accessTokenTTL: (c && c.access_token_ttl) || defaultTtl,
            jwt: { sign: { alg, kid: keys[0].kid } },
          };
        },
      },
    },
    // The claims a gateway maps to an identity and its groups travel in the access token itself.
    extraTokenClaims(ctx, token) {
      if (token.accountId) {
        const a = accounts[token.accountId];
        return a ? { ...(a.claims || {}) } : undefined;
      }
      const c = clientByID(token.clientId);
      return c && c.claims ? { ...c.claims } : undefined;
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: resourceTtl, ClientCredentials: resourceTtl, DeviceCode: cfg.device_code_ttl || 600, Interaction: 600, Session: 3600, Grant: 3600,
      IdToken: defaultTtl, RefreshToken: 3600,
    },
    pkce: { required: () => false },
  });
  provider.use(testHooks);
  provider.on('server_error', (ctx, err) => console.error('provider: server_error', err));
  return { provider, handle: provider.callback() };
}

// The sign-in and consent pages the device flow's browser step lands on (the provider renders the device
// code pages itself). The forms are plain HTML a test fills in with urllib.
function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > 65536) throw new Error('form too large');
    chunks.push(c);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'text/plain', 'interaction mismatch\n');
  const { prompt, params, session } = details;
  if (action === 'abort') {
    return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' },
      { mergeWithLastSubmission: false });
  }
  if (req.method === 'GET') {
    if (prompt.name === 'login') {
      return send(res, 200, 'text/html', page('Sign-in', `<form method="post" action="/interaction/${uid}/login">
<input type="text" name="login"><input type="password" name="password"><button type="submit">Sign-in</button></form>
<form method="post" action="/interaction/${uid}/abort"><button type="submit">Cancel</button></form>`));
    }
    return send(res, 200, 'text/html', page('Authorize', `<p>${escapeHtml(params.client_id)} asks for ${escapeHtml(params.scope || '')}</p>
<form method="post" action="/interaction/${uid}/confirm"><button type="submit">Continue</button></form>
<form method="post" action="/interaction/${uid}/abort"><button type="submit">Deny</button></form>`));
  }
  const form = await readForm(req);
  if (action === 'login') {
    const a = accounts[form.get('login') || ''];
    const pw = Buffer.from(form.get('password') || '');
    const ok = a && pw.length === Buffer.byteLength(a.password) && timingSafeEqual(pw, Buffer.from(a.password));
    if (!ok) return send(res, 401, 'text/html', page('Sign-in', '<p>wrong login or password</p>'));
    return provider.interactionFinished(req, res, { login: { accountId: form.get('login') } },
      { mergeWithLastSubmission: false });
  }
  if (action === 'confirm' && prompt.name === 'consent') {
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
      { mergeWithLastSubmission: true });
  }
  return send(res, 400, 'text/plain', 'unexpected interaction step\n');
}

function adminAllowed(req) {
  const want = Buffer.from(`Bearer ${cfg.admin_token}`);
  const got = Buffer.from(req.headers.authorization || '');
  return got.length === want.length && timingSafeEqual(got, want);
}

let current;
let issuer;

function keysAnswer() {
  return JSON.stringify({ current: keys[0].kid, published: keys.map((k) => k.kid) });
}

async function admin(req, res, path) {
  if (!adminAllowed(req)) return send(res, 401, 'application/json', '{"error":"unauthorized"}');
  if (path === '/_admin/keys' && req.method === 'GET') return send(res, 200, 'application/json', keysAnswer());
  if (path === '/_admin/rotate' && req.method === 'POST') {
    keys = [newKey(), ...keys];
    current = build(issuer);
    console.error(`provider: rotated, signing with ${keys[0].kid}`);
    return send(res, 200, 'application/json', keysAnswer());
  }
  if (path === '/_admin/slow_down' && req.method === 'POST') {
    slowDownNext = true;
    return send(res, 200, 'application/json', '{}');
  }
  if (path === '/_admin/stats' && req.method === 'GET') {
    return send(res, 200, 'application/json', JSON.stringify({ jwks_fetches: jwksFetches }));
  }
  if (path === '/_admin/polls' && req.method === 'GET') return send(res, 200, 'application/json', JSON.stringify(polls));
  if (path === '/_admin/retire' && req.method === 'POST') {
    keys = [keys[0]];
    current = build(issuer);
    console.error(`provider: retired old keys, publishing ${keys[0].kid} only`);
    return send(res, 200, 'application/json', keysAnswer());
  }
  return send(res, 404, 'application/json', '{"error":"not found"}');
}

const server = createServer({ cert: readFileSync(cfg.cert), key: readFileSync(cfg.key) }, (req, res) => {
  const path = new URL(req.url, 'https://x').pathname;
  const m = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(path);
  let work;
  if (path.startsWith('/_admin/')) work = admin(req, res, path);
  else if (m) work = interaction(current.provider, req, res, m[1], m[2] || 'show');
  else return current.handle(req, res);
  work.catch((err) => {
    console.error('provider: error', err);
    if (!res.headersSent) send(res, err.statusCode || 500, 'text/plain', `${err.name}: ${err.message}\n`);
    else res.end();
  });
  return undefined;
});

server.listen(cfg.port || 0, host, () => {
  const { port } = server.address();
  issuer = `https://${host}:${port}`;
  current = build(issuer);
  process.stdout.write(`${JSON.stringify({ issuer, port, kid: keys[0].kid })}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
