// tests/contract/contract.test.mjs -- openapi.yaml against a running server.
//
// Run: TIDINGS_URL=http://127.0.0.1:8080 node --test tests/contract/contract.test.mjs
// (tests/contract/run_contract.sh starts a server and does this for ctest).
//
// Every response goes through check(): its status must be one the spec documents for the
// operation, its Content-Type one of that response's media types, its body valid against the
// documented schema, and its required headers present and valid. Response schemas are
// checked strictly: an object schema without `additionalProperties` is compiled as if it said
// `false`, so the server cannot send a field the spec does not describe (the spec itself
// stays open, as DESIGN §4 lets fields be added). The spec's examples are validated too, and
// the route table in api/routes.c must equal the spec's paths and methods.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const toolsDir = path.join(root, 'tools');
if (!existsSync(path.join(toolsDir, 'node_modules', 'ajv'))) {
  throw new Error(`${toolsDir}/node_modules is missing: run \`npm ci --prefix tools\` first`);
}
const requireTool = createRequire(path.join(toolsDir, 'package.json'));
const Ajv2020 = requireTool('ajv/dist/2020').default;
const addFormats = requireTool('ajv-formats').default;
const YAML = requireTool('yaml');

const BASE = process.env.TIDINGS_URL;
if (!BASE) throw new Error('set TIDINGS_URL to the base URL of a running tidings server');
const base = new URL(BASE);
// Optional: a server whose Redis is unreachable, for the documented 503 answers.
const NO_REDIS = process.env.TIDINGS_URL_NO_REDIS;

const specText = readFileSync(path.join(root, 'openapi.yaml'), 'utf8');
const spec = YAML.parse(specText);
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

// The problem types of api/problem.c, by status.
const PROBLEMS = {
  400: ['bad-request', 'Bad Request'],
  401: ['unauthorized', 'Unauthorized'],
  403: ['forbidden', 'Forbidden'],
  404: ['not-found', 'Not Found'],
  405: ['method-not-allowed', 'Method Not Allowed'],
  409: ['conflict', 'Conflict'],
  413: ['payload-too-large', 'Payload Too Large'],
  415: ['unsupported-media-type', 'Unsupported Media Type'],
  422: ['unprocessable', 'Unprocessable Content'],
  429: ['too-many-requests', 'Too Many Requests'],
  500: ['internal', 'Internal Server Error'],
  503: ['unavailable', 'Service Unavailable'],
};

// ---- the spec, compiled --------------------------------------------------------------------

function deref(obj) {
  let o = obj;
  for (let guard = 0; o && o.$ref; guard++) {
    assert.ok(guard < 10, `$ref loop at ${obj.$ref}`);
    assert.match(o.$ref, /^#\//, `only local $refs are supported: ${o.$ref}`);
    o = o.$ref.slice(2).split('/').reduce((n, k) => n?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], spec);
    assert.ok(o, `unresolved $ref ${obj.$ref}`);
  }
  return o;
}

const SPEC_ID = 'urn:tidings:openapi';
// Rewrites component refs for ajv and closes object schemas (see the file comment).
function forAjv(schema, strict) {
  if (Array.isArray(schema)) return schema.map((s) => forAjv(s, strict));
  if (!schema || typeof schema !== 'object') return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === '$ref') out.$ref = v.replace(/^#\/components\/schemas\//, `${SPEC_ID}#/$defs/`);
    else if (k === 'properties' || k === '$defs' || k === 'patternProperties')
      out[k] = Object.fromEntries(Object.entries(v).map(([p, s]) => [p, forAjv(s, strict)]));
    else if (k === 'examples' || k === 'example' || k === 'const' || k === 'enum' || k === 'default')
      out[k] = v;
    else out[k] = forAjv(v, strict);
  }
  if (strict && out.properties && !('additionalProperties' in out) && !('unevaluatedProperties' in out))
    out.additionalProperties = false;
  return out;
}

function makeAjv(strict) {
  const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
  addFormats(ajv);
  // OpenAPI's `discriminator` (on StreamEvent) is a hint to generators; the oneOf of `const`
  // event names validates without it.
  ajv.addVocabulary(['discriminator']);
  ajv.addSchema({ $id: SPEC_ID, $defs: forAjv(spec.components?.schemas ?? {}, strict) });
  return ajv;
}
const strictAjv = makeAjv(true);
const plainAjv = makeAjv(false);
const compiled = new Map();
function validator(schema, strict = true) {
  const key = JSON.stringify([schema, strict]);
  if (!compiled.has(key)) compiled.set(key, (strict ? strictAjv : plainAjv).compile(forAjv(schema, strict)));
  return compiled.get(key);
}
function assertValid(schema, value, what, strict = true) {
  const v = validator(schema, strict);
  if (!v(value)) {
    assert.fail(`${what} does not match its schema: ${strictAjv.errorsText(v.errors)}\n` +
      `value: ${JSON.stringify(value).slice(0, 600)}`);
  }
}

// Every operation of the spec: "METHOD /path" -> {method, path, op, security}.
const operations = new Map();
for (const [p, item] of Object.entries(spec.paths)) {
  for (const m of METHODS) {
    if (!item[m]) continue;
    const op = item[m];
    const security = op.security ?? spec.security ?? [];
    operations.set(`${m.toUpperCase()} ${p}`, { method: m.toUpperCase(), path: p, item, op, security });
  }
}
const unrouted = spec['x-tidings-unrouted-responses'];

// The route table of api/routes.c: {"GET", "/v1/users/{id}", handler, true, API_RATE_READ}.
function serverRoutes() {
  const src = readFileSync(path.join(root, 'api', 'routes.c'), 'utf8');
  const table = src.match(/api_routes\[\]\s*=\s*\{([\s\S]*?)\n\};/);
  assert.ok(table, 'api/routes.c: the api_routes[] table was not found');
  const routes = [...table[1].matchAll(/\{\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*(\w+)\s*,\s*(true|false)\s*(?:,\s*\w+\s*)?\}/g)]
    .map(([, method, pattern, handler, auth]) => ({ method, pattern, handler, auth: auth === 'true' }));
  assert.ok(routes.length > 0, 'api/routes.c: no route parsed from api_routes[]');
  return routes;
}

// ---- HTTP ----------------------------------------------------------------------------------

const observed = new Set(); // "METHOD /template STATUS"
let checkedResponses = 0;

function request(method, pathAndQuery, { headers = {}, body, expectContinue = false, server = base } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) h['Content-Length'] = Buffer.byteLength(body);
    if (expectContinue) h.Expect = '100-continue';
    const req = http.request({
      host: server.hostname, port: server.port, method, path: pathAndQuery, headers: h, agent: false,
    });
    req.setTimeout(15000, () => req.destroy(new Error(`${method} ${pathAndQuery}: timed out`)));
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, headers: res.headers, text, method, path: pathAndQuery });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined && expectContinue) req.on('continue', () => req.end(body));
    else req.end(body);
  });
}

function mediaType(res) {
  return (res.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

function headerValue(schema, raw) {
  return schema?.type === 'integer' && /^-?[0-9]+$/.test(raw) ? Number(raw) : raw;
}

// Checks a response against a Response object of the spec; returns the parsed body.
function checkResponse(res, response, what) {
  response = deref(response);
  assert.equal(res.headers['cache-control'], 'no-store', `${what}: Cache-Control must be no-store`);
  for (const [name, hdr] of Object.entries(response.headers ?? {})) {
    const h = deref(hdr);
    const raw = res.headers[name.toLowerCase()];
    if (h.required) assert.ok(raw !== undefined, `${what}: documented header ${name} is missing`);
    if (raw !== undefined && h.schema) assertValid(h.schema, headerValue(h.schema, raw), `${what}: header ${name}`);
  }
  if (!response.content) {
    assert.equal(res.text, '', `${what}: the spec documents no body, the server sent one`);
    return undefined;
  }
  const mt = mediaType(res);
  const media = response.content[mt];
  assert.ok(media, `${what}: Content-Type '${res.headers['content-type']}' is not documented ` +
    `(documented: ${Object.keys(response.content).join(', ')})`);
  let body = res.text;
  if (mt === 'application/json' || mt.endsWith('+json')) {
    try {
      body = JSON.parse(res.text);
    } catch (e) {
      assert.fail(`${what}: the body is not JSON: ${res.text.slice(0, 200)}`);
    }
  }
  if (media.schema) assertValid(media.schema, body, `${what}: body`);
  if (mt === 'application/problem+json') {
    const [slug, title] = PROBLEMS[res.status] ?? [];
    assert.equal(body.status, res.status, `${what}: problem status differs from the HTTP status`);
    assert.equal(body.type, `urn:tidings:problem:${slug}`, `${what}: problem type`);
    assert.equal(body.title, title, `${what}: problem title`);
    assert.equal(body.instance, problemInstance(res.path),
      `${what}: problem instance is the request path, decoded and percent-encoded again`);
  }
  checkedResponses++;
  return body;
}

// The `instance` api/problem.c derives from a request path: the query dropped, the path
// percent-decoded (as the HTTP library hands it over), then every byte but ASCII letters,
// digits and "/-._~" percent-encoded with upper-case hex.
function problemInstance(requestPath) {
  const raw = requestPath.split('?')[0];
  const bytes = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(raw.slice(i + 1, i + 3))) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(raw[i], 'utf8'));
    }
  }
  return bytes.map((b) => (/[A-Za-z0-9\/._~-]/.test(String.fromCharCode(b)) && b < 0x80
    ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

function fill(template, params) {
  return template.replace(/\{(\w+)\}/g, (_, k) => {
    assert.ok(k in params, `no value for {${k}} in ${template}`);
    return encodeURIComponent(params[k]);
  });
}

// Calls an operation of the spec and checks the answer. opts: params, query, token, json, body,
// contentType (null for none), headers, expectContinue, server (a URL; TIDINGS_URL by default).
async function api(method, template, opts = {}) {
  const key = `${method} ${template}`;
  const entry = operations.get(key);
  assert.ok(entry, `the spec has no operation ${key}`);
  let p = fill(template, opts.params ?? {});
  if (opts.query) p += `?${new URLSearchParams(opts.query)}`;
  const headers = { ...(opts.headers ?? {}) };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  let body = opts.body;
  if (opts.json !== undefined) body = JSON.stringify(opts.json);
  const ct = 'contentType' in opts ? opts.contentType : body !== undefined ? 'application/json' : null;
  if (ct) headers['Content-Type'] = ct;
  const res = await request(method, p, { headers, body, expectContinue: opts.expectContinue, server: opts.server });
  const what = `${method} ${p} -> ${res.status}`;
  const response = entry.op.responses[String(res.status)];
  assert.ok(response, `${what}: status ${res.status} is not documented for ${key} ` +
    `(documented: ${Object.keys(entry.op.responses).join(', ')}); body: ${res.text.slice(0, 300)}`);
  res.body = checkResponse(res, response, what);
  observed.add(`${key} ${res.status}`);
  return res;
}

function expectStatus(res, status) {
  assert.equal(res.status, status, `${res.method} ${res.path}: expected ${status}, got ${res.status}: ${res.text.slice(0, 300)}`);
  return res.body;
}

// A request that matches no operation: 404 "no such route" or 405 with Allow.
async function unroutedCall(method, p, opts = {}) {
  const res = await request(method, p, opts);
  const what = `${method} ${p} -> ${res.status}`;
  const response = res.status === 405 ? unrouted.MethodNotAllowed : res.status === 404 ? unrouted.NoSuchRoute : null;
  assert.ok(response, `${what}: expected 404 or 405 for a request that matches no operation; body: ${res.text}`);
  res.body = checkResponse(res, response, what);
  observed.add(`UNROUTED ${res.status}`);
  return res;
}

const rand = () => randomBytes(5).toString('hex');
const newHandle = (prefix) => `${prefix}_${rand()}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls probe() (bounded) until it returns [true, value]; fails with the last state seen. Fan-out
// is asynchronous: the bound exceeds the default --claim-idle-ms (30 s), in case another server
// sharing this Redis took a job and stopped before finishing it.
async function waitFor(what, probe, ms = 45000) {
  let last;
  for (const deadline = Date.now() + ms; ;) {
    const [done, value] = await probe();
    if (done) return value;
    last = value;
    if (Date.now() > deadline) assert.fail(`${what}: not seen within ${ms / 1000} s; last: ${JSON.stringify(last).slice(0, 1500)}`);
    await sleep(100);
  }
}

// The ids of a list read one item a page, following next_cursor (at most pages pages);
// page(query) answers one page.
async function oneByOne(page, pages) {
  const ids = [];
  for (let i = 0, cursor; i < pages; i++) {
    const list = await page({ limit: '1', ...(cursor ? { cursor } : {}) });
    ids.push(...list.items.map((x) => x.id));
    cursor = list.next_cursor;
    if (!cursor) break;
  }
  return ids;
}

// ---- the spec itself -----------------------------------------------------------------------

describe('the spec', () => {
  test('is OpenAPI 3.1 with the agreed tags and security scheme', () => {
    assert.match(spec.openapi, /^3\.1\./);
    const tags = spec.tags.map((t) => t.name);
    assert.deepEqual([...tags].sort(), ['Markers', 'Notifications', 'Posts', 'Stream', 'System', 'Timeline', 'Tokens', 'Users']);
    const bearer = spec.components.securitySchemes.bearerAuth;
    assert.equal(bearer.type, 'http');
    assert.equal(bearer.scheme, 'bearer');
    for (const { method, path: p, op } of operations.values()) {
      assert.ok(op.operationId, `${method} ${p}: no operationId`);
      assert.equal(op.tags?.length, 1, `${method} ${p}: exactly one tag`);
      assert.ok(tags.includes(op.tags[0]), `${method} ${p}: undeclared tag ${op.tags[0]}`);
    }
    assert.ok(unrouted?.NoSuchRoute && unrouted?.MethodNotAllowed, 'x-tidings-unrouted-responses is incomplete');
  });

  test('compiles every schema and every example validates against its schema', () => {
    let examples = 0;
    const checkExamples = (holder, schema, what, strict) => {
      if (!schema) return;
      validator(schema, strict);
      if ('example' in holder && what.includes('text/event-stream')) {
        // The example is the wire text; the schema is one event (StreamEvent): each of its
        // frames with an `event:` line must be a valid event.
        for (const frame of holder.example.split('\n\n')) {
          const f = Object.fromEntries(frame.split('\n').filter((l) => /^(id|event|data): /.test(l))
            .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
          if (f.event) assertValid(schema, { event: f.event, id: f.id, data: JSON.parse(f.data) }, `${what} example frame`, strict);
        }
        examples++;
      } else if ('example' in holder) {
        assertValid(schema, holder.example, `${what} example`, strict);
        examples++;
      }
      for (const [name, ex] of Object.entries(holder.examples ?? {})) {
        assertValid(schema, deref(ex).value, `${what} example '${name}'`, strict);
        examples++;
      }
    };
    for (const [name, schema] of Object.entries(spec.components.schemas)) {
      validator(schema);
      for (const ex of schema.examples ?? []) assertValid(schema, ex, `schema ${name} example`);
    }
    const responses = [];
    for (const { method, path: p, item, op } of operations.values()) {
      for (const prm of [...(item.parameters ?? []), ...(op.parameters ?? [])].map(deref)) {
        checkExamples(prm, prm.schema, `${method} ${p} parameter ${prm.name}`, false);
      }
      const rb = op.requestBody && deref(op.requestBody);
      for (const [mt, media] of Object.entries(rb?.content ?? {})) {
        checkExamples(media, media.schema, `${method} ${p} request ${mt}`, false);
      }
      for (const [status, r] of Object.entries(op.responses)) responses.push([`${method} ${p} ${status}`, r]);
    }
    for (const [name, r] of Object.entries(unrouted)) responses.push([`unrouted ${name}`, r]);
    for (const [what, r0] of responses) {
      const r = deref(r0);
      for (const [hn, h] of Object.entries(r.headers ?? {})) checkExamples(deref(h), deref(h).schema, `${what} header ${hn}`, false);
      for (const [mt, media] of Object.entries(r.content ?? {})) checkExamples(media, media.schema, `${what} ${mt}`, true);
    }
    assert.ok(examples > 30, `only ${examples} examples found`);
  });

  test("equals the server's route table (api/routes.c), with the same auth", () => {
    const routes = serverRoutes();
    const fromServer = routes.map((r) => `${r.method} ${r.pattern}`).sort();
    const fromSpec = [...operations.keys()].sort();
    assert.deepEqual(fromSpec, fromServer, 'the spec\'s operations and api/routes.c differ');
    for (const r of routes) {
      const { security } = operations.get(`${r.method} ${r.pattern}`);
      const needsBearer = security.length > 0 && security.every((req) => 'bearerAuth' in req);
      assert.equal(needsBearer, r.auth, `${r.method} ${r.pattern}: auth is ${r.auth} in routes.c but the spec says otherwise`);
      // Registration and CORS preflights (browsers send them without credentials) are open.
      if (r.pattern.startsWith('/v1/') && !(r.method === 'POST' && r.pattern === '/v1/users') && r.method !== 'OPTIONS') {
        assert.ok(r.auth, `${r.method} ${r.pattern}: every /v1 route but registration needs a token`);
      }
    }
  });
});

// ---- the server against the spec -----------------------------------------------------------

describe('the server', () => {
  const users = {};
  let bobPost, aliceReply, carolPost;

  before(async () => {
    // Wait (briefly) for the server to be ready; run_contract.sh has already waited.
    for (let i = 0; i < 50; i++) {
      try {
        const r = await request('GET', '/readyz');
        if (r.status === 200) return;
      } catch {
        /* not up yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${BASE}/readyz never answered 200`);
  });

  test('serves every operation of the spec (no "no such route", no 405)', async () => {
    for (const { method, path: p } of operations.values()) {
      const concrete = fill(p, { id: '1' });
      const res = await request(method, concrete);
      assert.notEqual(res.status, 405, `${method} ${concrete}: 405, the server lacks this route`);
      if (res.status === 404) {
        assert.notEqual(JSON.parse(res.text).detail, 'no such route', `${method} ${concrete}: the server lacks this route`);
      }
      assert.ok(operations.get(`${method} ${p}`).op.responses[String(res.status)],
        `${method} ${concrete}: undocumented status ${res.status}`);
    }
  });

  test('System: healthz, readyz, metrics, openapi.yaml, the demo page', async () => {
    assert.deepEqual(expectStatus(await api('GET', '/healthz'), 200), { status: 'ok' });
    const ready = expectStatus(await api('GET', '/readyz'), 200);
    assert.deepEqual(ready, { status: 'ready', checks: { redis: 'up', id_node: 'leased', writes: 'ok' } });
    const metrics = expectStatus(await api('GET', '/metrics'), 200);
    assert.match(metrics, /^# TYPE tidings_http_requests_total counter$/m);
    assert.match(metrics, /^tidings_redis_up 1$/m);
    const served = expectStatus(await api('GET', '/openapi.yaml'), 200);
    if (served !== specText) {
      const a = served.split('\n'), b = specText.split('\n');
      let i = 0;
      while (i < a.length && i < b.length && a[i] === b[i]) i++;
      assert.fail('GET /openapi.yaml differs from openapi.yaml on disk (rebuild the server: the spec is ' +
        `compiled in); first difference at line ${i + 1}:\n  served:  ${a[i]}\n  on disk: ${b[i]}`);
    }
    const page = await api('GET', '/');
    const html = expectStatus(page, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(html, /^<!doctype html>/i);
    assert.ok(html.includes('EventSource'), 'the demo page follows the stream with EventSource');
  });

  test('Users: register', async () => {
    for (const name of ['alice', 'bob', 'carol']) {
      const handle = newHandle(name);
      const res = await api('POST', '/v1/users', { json: { handle, display_name: `${name} ✨ Example` } });
      const reg = expectStatus(res, 201);
      assert.equal(reg.user.handle, handle);
      assert.equal(reg.user.display_name, `${name} ✨ Example`);
      assert.deepEqual([reg.user.followers_count, reg.user.following_count, reg.user.posts_count], [0, 0, 0]);
      assert.equal(res.headers.location, `/v1/users/${reg.user.id}`);
      assert.ok(reg.token.startsWith(`tdg_${reg.user.id}_`));
      users[name] = { ...reg.user, token: reg.token };
    }
    // Without display_name, or with null, the display name is the handle.
    for (const json of [{ handle: newHandle('dave') }, { handle: newHandle('erin'), display_name: null }]) {
      const reg = expectStatus(await api('POST', '/v1/users', { json }), 201);
      assert.equal(reg.user.display_name, json.handle);
    }
    // Handles are unique case-insensitively.
    const taken = await api('POST', '/v1/users', { json: { handle: users.alice.handle.toUpperCase() } });
    expectStatus(taken, 409);
    // Longest handle and display name are accepted.
    const h30 = `x${rand()}`.padEnd(30, '_');
    const reg = expectStatus(await api('POST', '/v1/users', { json: { handle: h30, display_name: 'é'.repeat(50) } }), 201);
    assert.equal(reg.user.handle, h30);
  });

  test('Users: registration rejects bad input with 400 and 415', async () => {
    const newUser = spec.components.schemas.NewUser;
    const rejected = [
      { handle: 'has space' },
      { handle: '' },
      { handle: 'x'.repeat(31) },
      { handle: 'dash-ed' },
      { handle: 42 },
      { handle: null },
      {},
      { display_name: 'no handle' },
      { handle: newHandle('f'), display_name: '' },
      { handle: newHandle('f'), display_name: 'y'.repeat(51) },
      { handle: newHandle('f'), display_name: 'tab\there' },
      { handle: newHandle('f'), display_name: 'c1\u0085control' },
      { handle: newHandle('f'), display_name: 'del\u007f' },
      { handle: newHandle('f'), display_name: 7 },
      { handle: newHandle('f'), email: 'f@example.org' },
      [{ handle: newHandle('f') }],
      'just a string',
    ];
    for (const json of rejected) {
      const res = await api('POST', '/v1/users', { json });
      expectStatus(res, 400);
      assert.ok(!validator(newUser, false)(json), `the NewUser schema accepts ${JSON.stringify(json)}, the server does not`);
    }
    for (const body of ['{"handle":', '', 'null', '{"handle":"a","handle":"b"}', '{"handle":"\\u0000x"}']) {
      expectStatus(await api('POST', '/v1/users', { body, contentType: 'application/json' }), 400);
    }
    const json = { handle: newHandle('g') };
    for (const contentType of [null, 'text/plain', 'application/jsonp']) {
      expectStatus(await api('POST', '/v1/users', { json, contentType }), 415);
    }
    expectStatus(await api('POST', '/v1/users', { json, contentType: 'application/json; charset=utf-8' }), 201);
  });

  test('Users: GET /v1/me reads the caller; PATCH /v1/me edits the name and bio, rejecting bad input with 400 and 415', async () => {
    const handle = newHandle('me');
    const reg = expectStatus(await api('POST', '/v1/users', { json: { handle } }), 201);
    const token = reg.token;
    const me = expectStatus(await api('GET', '/v1/me', { token }), 200);
    assert.equal(me.id, reg.user.id);
    assert.equal(me.bio, '');
    const edit = { display_name: 'Mé Myself', bio: 'first line\nsecond 🌊' };
    const edited = expectStatus(await api('PATCH', '/v1/me', { token, json: edit }), 200);
    assert.equal(edited.display_name, edit.display_name);
    assert.equal(edited.bio, edit.bio);
    const again = expectStatus(await api('GET', '/v1/me', { token }), 200);
    assert.equal(again.bio, edit.bio, 'GET /v1/me is fresh, not the token cache');
    const profileEdit = spec.components.schemas.ProfileEdit;
    const rejected = [
      {}, { handle: 'other' }, { bio: 'x', extra: 1 }, { bio: null }, { bio: 7 }, { display_name: '' },
      { display_name: 'y'.repeat(51) }, { display_name: 'tab\there' }, { display_name: 'zero\u200bwidth' },
      { display_name: 'rlo\u202e' }, { bio: 'z'.repeat(161) }, { bio: 'iso\u2066' }, { bio: 'tab\t' },
      [{ bio: 'x' }], 'just a string',
    ];
    for (const json of rejected) {
      expectStatus(await api('PATCH', '/v1/me', { token, json }), 400);
    }
    for (const json of [{}, { handle: 'other' }, { bio: 'x', extra: 1 }, { bio: null }, { bio: 7 }, { bio: 'z'.repeat(161) }, [{ bio: 'x' }], 'just a string']) {
      assert.ok(!validator(profileEdit, false)(json), `the ProfileEdit schema accepts ${JSON.stringify(json)}, the server does not`);
    }
    expectStatus(await api('PATCH', '/v1/me', { token, json: { bio: 'x' }, contentType: 'text/plain' }), 415);
    const kept = expectStatus(await api('GET', '/v1/me', { token }), 200);
    assert.equal(kept.bio, edit.bio, 'refused edits changed nothing');
  });

  test('Users: GET /v1/me/export streams the caller\'s data as the Export schema; 401 without a token', async () => {
    const reg = expectStatus(await api('POST', '/v1/users', { json: { handle: newHandle('exp') } }), 201);
    const token = reg.token;
    const post = expectStatus(await api('POST', '/v1/posts', { token, json: { text: 'to take along' } }), 202);
    expectStatus(await api('PUT', '/v1/users/{id}/follow', { params: { id: users.alice.id }, token }), 204);
    const res = await api('GET', '/v1/me/export', { token });
    const doc = expectStatus(res, 200);
    assert.equal(doc.user.id, reg.user.id);
    assert.deepEqual(doc.posts.map((p) => p.id), [post.id]);
    assert.deepEqual(doc.following, [users.alice.id]);
    assert.match(res.headers['content-disposition'], /^attachment/);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    expectStatus(await api('GET', '/v1/me/export', {}), 401);
  });

  test('Users: lookup by handle in any case; 400 for a missing or impossible handle, 404 for none or a block, 401 without a token', async () => {
    const token = users.alice.token;
    const lookup = (query, t = token) => api('GET', '/v1/users/lookup', { token: t, query });
    const u = expectStatus(await lookup({ handle: users.bob.handle.toUpperCase() }), 200);
    assert.equal(u.id, users.bob.id);
    assert.equal(u.handle, users.bob.handle);
    for (const query of [undefined, { handle: '' }, { handle: 'has space' }, { handle: 'dash-ed' }, { handle: 'x'.repeat(31) }, { name: 'bob' }]) {
      expectStatus(await lookup(query), 400);
    }
    expectStatus(await lookup({ handle: `nobody_${rand()}` }), 404);
    expectStatus(await lookup({ handle: users.bob.handle }, null), 401);
    const a = expectStatus(await api('POST', '/v1/users', { json: { handle: newHandle('lka') } }), 201);
    const b = expectStatus(await api('POST', '/v1/users', { json: { handle: newHandle('lkb') } }), 201);
    expectStatus(await api('PUT', '/v1/users/{id}/block', { params: { id: b.user.id }, token: a.token }), 204);
    expectStatus(await lookup({ handle: a.user.handle }, b.token), 404);
    expectStatus(await lookup({ handle: b.user.handle }, a.token), 404);
    const res = await unroutedCall('POST', '/v1/users/lookup');
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'GET, HEAD', 'each method once, though two routes match');
  });

  test('Users: search by handle prefix in any case, ordered, limited, blocks left out; 400 for a bad q or limit, 401 without a token', async () => {
    const base = newHandle('Sr');
    const made = {};
    for (const tail of ['_b', '_a', '_Ab']) {
      made[tail] = expectStatus(await api('POST', '/v1/users', { json: { handle: `${base}${tail}` } }), 201);
    }
    const token = made._b.token;
    const search = (query, t = token) => api('GET', '/v1/users/search', { token: t, query });
    const handles = (page) => page.items.map((u) => u.handle);
    assert.deepEqual(handles(expectStatus(await search({ q: base.toUpperCase() }), 200)), [`${base}_a`, `${base}_Ab`, `${base}_b`]);
    const two = expectStatus(await search({ q: base.toLowerCase(), limit: '2' }), 200);
    assert.deepEqual(handles(two), [`${base}_a`, `${base}_Ab`]);
    assert.equal(two.items[0].id, made._a.user.id);
    assert.deepEqual(expectStatus(await search({ q: `${base}_z` }), 200), { items: [] });
    expectStatus(await api('PUT', '/v1/users/{id}/block', { params: { id: made._Ab.user.id }, token }), 204);
    assert.deepEqual(handles(expectStatus(await search({ q: base, limit: '2' }), 200)), [`${base}_a`, `${base}_b`], 'a blocked user is left out and the page still fills');
    assert.deepEqual(handles(expectStatus(await search({ q: base }, made._Ab.token), 200)), [`${base}_a`, `${base}_Ab`], 'either way');
    for (const query of [undefined, { q: '' }, { q: 'a-b' }, { q: 'x'.repeat(31) }, { limit: '5' }, { q: 'a', limit: '0' },
      { q: 'a', limit: '51' }, { q: 'a', limit: 'ten' }, { q: 'a', limit: '01' }]) {
      expectStatus(await search(query), 400);
    }
    expectStatus(await search({ q: base }, null), 401);
    const res = await unroutedCall('DELETE', '/v1/users/search');
    assert.equal(res.headers.allow, 'GET, HEAD');
  });

  test('Tokens: a second device token, listed without secrets, revoked one by one and by signing out; bad input is 400, 404, 409', async () => {
    const reg = expectStatus(await api('POST', '/v1/users', { json: { handle: newHandle('tok') } }), 201);
    const first = reg.token;
    const issued = expectStatus(await api('POST', '/v1/tokens', { token: first, json: { name: 'phone', expires_in: 86400 } }), 201);
    assert.equal(issued.name, 'phone');
    assert.equal(issued.current, false);
    assert.ok(issued.token.startsWith(`tdg_${reg.user.id}_${issued.id}_`));
    assert.equal(Date.parse(issued.expires_at) - Date.parse(issued.created_at), 86400 * 1000);
    const me = expectStatus(await api('GET', '/v1/me', { token: issued.token }), 200);
    assert.equal(me.id, reg.user.id);
    const list = expectStatus(await api('GET', '/v1/tokens', { token: issued.token }), 200);
    assert.deepEqual(list.items.map((t) => [t.name, t.current]), [['registration', false], ['phone', true]]);
    assert.ok(list.items.every((t) => !('token' in t)), 'a listed token shows its secret');
    for (const json of [{}, { name: '' }, { name: 'n'.repeat(65) }, { name: 'tab\t' }, { name: 7 }, { name: 'x', extra: 1 },
      { name: 'x', expires_in: 59 }, { name: 'x', expires_in: 31536001 }, { name: 'x', expires_in: '60' }, ['x']]) {
      expectStatus(await api('POST', '/v1/tokens', { token: first, json }), 400);
    }
    expectStatus(await api('POST', '/v1/tokens', { token: first, json: { name: 'x' }, contentType: 'text/plain' }), 415);
    expectStatus(await api('DELETE', '/v1/tokens/{id}', { token: first, params: { id: 'abc' } }), 400);
    expectStatus(await api('DELETE', '/v1/tokens/{id}', { token: first, params: { id: '1' } }), 404);
    // Another user cannot revoke it.
    const other = expectStatus(await api('POST', '/v1/users', { json: { handle: newHandle('tok') } }), 201);
    expectStatus(await api('DELETE', '/v1/tokens/{id}', { token: other.token, params: { id: issued.id } }), 404);
    expectStatus(await api('DELETE', '/v1/tokens/{id}', { token: first, params: { id: issued.id } }), 204);
    expectStatus(await api('GET', '/v1/me', { token: issued.token }), 401);
    expectStatus(await api('DELETE', '/v1/tokens/{id}', { token: first, params: { id: issued.id } }), 404);
    // Up to 50 live tokens; then 409.
    for (let i = 1; i < 50; i++) expectStatus(await api('POST', '/v1/tokens', { token: first, json: { name: `device ${i}` } }), 201);
    const full = expectStatus(await api('POST', '/v1/tokens', { token: first, json: { name: 'one more' } }), 409);
    assert.match(full.detail, /50/);
    // Signing out ends the caller's token only.
    expectStatus(await api('DELETE', '/v1/tokens/current', { token: other.token }), 204);
    expectStatus(await api('GET', '/v1/tokens', { token: other.token }), 401);
    expectStatus(await api('DELETE', '/v1/tokens/current', { token: other.token }), 401);
    expectStatus(await api('GET', '/v1/tokens', { token: first }), 200);
  });

  test('Users: DELETE /v1/me answers 202 and the user is gone for the API at once', async () => {
    const reg = expectStatus(await api('POST', '/v1/users', { json: { handle: newHandle('bye') } }), 201);
    const token = reg.token;
    expectStatus(await api('GET', '/v1/me', { token }), 200); // the token is cached now
    expectStatus(await api('DELETE', '/v1/me', {}), 401);
    expectStatus(await api('DELETE', '/v1/me', { token: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}` }), 401);
    const gone = await api('DELETE', '/v1/me', { token });
    expectStatus(gone, 202);
    assert.equal(gone.text, '', '202 without a body');
    expectStatus(await api('GET', '/v1/me', { token }), 401);
    expectStatus(await api('DELETE', '/v1/me', { token }), 401);
    expectStatus(await api('GET', '/v1/users/{id}', { params: { id: reg.user.id }, token: users.alice.token }), 404);
    expectStatus(await api('PUT', '/v1/users/{id}/follow', { params: { id: reg.user.id }, token: users.alice.token }), 404);
  });

  test('oversize bodies get 413, on every path', async () => {
    const big = JSON.stringify({ handle: 'x', pad: 'p'.repeat(70 * 1024) });
    expectStatus(await api('POST', '/v1/users', { body: big, expectContinue: true }), 413);
    expectStatus(await api('POST', '/v1/posts', { body: big, token: users.alice.token, expectContinue: true }), 413);
    expectStatus(await api('PUT', '/v1/users/{id}/follow', { params: { id: users.bob.id }, body: big, expectContinue: true }), 413);
    expectStatus(await api('PUT', '/v1/posts/{id}/like', { params: { id: '1' }, body: big, token: users.alice.token, expectContinue: true }), 413);
    expectStatus(await api('POST', '/v1/notifications/read', { body: big, token: users.alice.token, expectContinue: true }), 413);
    const res = await request('POST', '/v1/nothing', { headers: { 'Content-Type': 'application/json' }, body: big, expectContinue: true });
    assert.equal(res.status, 413);
    checkResponse(res, spec.components.responses.PayloadTooLarge, 'POST /v1/nothing (oversize)');
  });

  test('authenticated routes answer 401 without a valid token', async () => {
    const malformed = ['', 'tdg_1_short', `tdg_${users.alice.id}_${'A'.repeat(42)}`, 'not-a-token'];
    const badHeaders = [
      {},
      { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
      { Authorization: `Bearer ${users.alice.token.slice(0, -1)}B` },
      { Authorization: `Bearer tdg_${users.alice.id}_${'A'.repeat(43)}` },
      { Authorization: `Bearer tdg_9007199254740991_${'A'.repeat(43)}` },
      ...malformed.map((t) => ({ Authorization: `Bearer ${t}` })),
    ];
    for (const { method, path: p, security } of operations.values()) {
      if (security.length === 0) continue;
      for (const headers of badHeaders) {
        const res = await api(method, p, { params: { id: users.bob.id }, headers, ...(method === 'POST' ? { json: { text: 'x' } } : {}) });
        expectStatus(res, 401);
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="tidings"', `${method} ${p}: WWW-Authenticate`);
      }
    }
    // The scheme name is case-insensitive.
    const ok = await api('GET', '/v1/users/{id}', { params: { id: users.bob.id }, headers: { Authorization: `bearer ${users.alice.token}` } });
    expectStatus(ok, 200);
  });

  test('Users: profiles and bad ids', async () => {
    const u = expectStatus(await api('GET', '/v1/users/{id}', { params: { id: users.bob.id }, token: users.alice.token }), 200);
    assert.equal(u.handle, users.bob.handle);
    assert.equal(u.created_at, users.bob.created_at);
    for (const id of ['abc', '0', '01', '-1', '1.5', '12345678901234567', '9007199254740992', ' 1']) {
      for (const template of ['/v1/users/{id}', '/v1/users/{id}/followers', '/v1/users/{id}/following', '/v1/users/{id}/posts', '/v1/posts/{id}']) {
        expectStatus(await api('GET', template, { params: { id }, token: users.alice.token }), 400);
      }
      for (const [method, template] of [
        ['PUT', '/v1/users/{id}/follow'], ['DELETE', '/v1/users/{id}/follow'], ['DELETE', '/v1/posts/{id}'],
        ['PUT', '/v1/users/{id}/block'], ['DELETE', '/v1/users/{id}/block'],
        ['PUT', '/v1/users/{id}/mute'], ['DELETE', '/v1/users/{id}/mute'],
        ['PUT', '/v1/posts/{id}/like'], ['DELETE', '/v1/posts/{id}/like'],
        ['POST', '/v1/posts/{id}/repost'], ['DELETE', '/v1/posts/{id}/repost'],
      ]) {
        expectStatus(await api(method, template, { params: { id }, token: users.alice.token }), 400);
      }
    }
    expectStatus(await api('GET', '/v1/users/{id}', { params: { id: '1' }, token: users.alice.token }), 404);
    // Problems stay valid UTF-8 and their instance is percent-encoded again.
    const accented = expectStatus(await api('GET', '/v1/users/{id}', { params: { id: 'é' }, token: users.alice.token }), 400);
    assert.equal(accented.instance, '/v1/users/%C3%A9');
    assert.equal(accented.detail, "'é' is not an id (1 to 16 digits)");
    const raw = await request('GET', '/v1/users/%FF%41', { headers: { Authorization: `Bearer ${users.alice.token}` } });
    assert.equal(raw.status, 400);
    const invalid = checkResponse(raw, operations.get('GET /v1/users/{id}').op.responses['400'], 'GET /v1/users/%FF%41');
    assert.equal(invalid.instance, '/v1/users/%FFA');
    assert.equal(invalid.detail, "'?A' is not an id (1 to 16 digits)");
  });

  test('Users: follow, unfollow, followers, following', async () => {
    const { alice, bob, carol } = users;
    const follow = (who, whom) => api('PUT', '/v1/users/{id}/follow', { params: { id: whom.id }, token: who.token });
    expectStatus(await follow(alice, bob), 204);
    expectStatus(await follow(alice, bob), 204); // idempotent
    expectStatus(await follow(carol, bob), 204);
    expectStatus(await follow(bob, alice), 204);
    expectStatus(await follow(alice, alice), 422);
    // Unfollowing yourself changes nothing: a 204, like any unfollow of someone not followed.
    expectStatus(await api('DELETE', '/v1/users/{id}/follow', { params: { id: alice.id }, token: alice.token }), 204);
    expectStatus(await api('PUT', '/v1/users/{id}/follow', { params: { id: '1' }, token: alice.token }), 404);
    expectStatus(await api('DELETE', '/v1/users/{id}/follow', { params: { id: '1' }, token: alice.token }), 404);

    const profile = expectStatus(await api('GET', '/v1/users/{id}', { params: { id: bob.id }, token: bob.token }), 200);
    assert.equal(profile.followers_count, 2);
    assert.equal(profile.following_count, 1);

    // Paginate bob's followers one at a time: carol (most recent) then alice.
    const seen = await oneByOne(async (query) =>
      expectStatus(await api('GET', '/v1/users/{id}/followers', { params: { id: bob.id }, query, token: alice.token }), 200), 5);
    assert.deepEqual(seen, [carol.id, alice.id]);
    const all = expectStatus(await api('GET', '/v1/users/{id}/followers', { params: { id: bob.id }, token: alice.token }), 200);
    assert.deepEqual(all.items.map((u) => u.id), [carol.id, alice.id]);
    assert.equal(all.next_cursor, null);
    const following = expectStatus(await api('GET', '/v1/users/{id}/following', { params: { id: alice.id }, query: { limit: '100' }, token: bob.token }), 200);
    assert.deepEqual(following.items.map((u) => u.id), [bob.id]);

    for (const template of ['/v1/users/{id}/followers', '/v1/users/{id}/following', '/v1/users/{id}/posts']) {
      for (const query of [{ limit: '0' }, { limit: '101' }, { limit: 'ten' }, { limit: '-1' }, { limit: '05' }, { limit: '' },
        { cursor: 'xyz' }, { cursor: '0' }, { cursor: '' }]) {
        expectStatus(await api('GET', template, { params: { id: bob.id }, query, token: alice.token }), 400);
      }
      expectStatus(await api('GET', template, { params: { id: '1' }, token: alice.token }), 404);
    }

    for (const template of ['/v1/blocks', '/v1/mutes', '/v1/notifications']) {
      for (const query of [{ limit: '0' }, { limit: '101' }, { limit: 'ten' }, { limit: '05' }, { cursor: 'xyz' }, { cursor: '0' }]) {
        expectStatus(await api('GET', template, { query, token: alice.token }), 400);
      }
    }

    expectStatus(await api('DELETE', '/v1/users/{id}/follow', { params: { id: bob.id }, token: carol.token }), 204);
    expectStatus(await api('DELETE', '/v1/users/{id}/follow', { params: { id: bob.id }, token: carol.token }), 204);
    const after1 = expectStatus(await api('GET', '/v1/users/{id}/followers', { params: { id: bob.id }, token: bob.token }), 200);
    assert.deepEqual(after1.items.map((u) => u.id), [alice.id]);
  });

  test('Posts: publish with mentions, Idempotency-Key and replies', async () => {
    const { alice, bob } = users;
    const key = `k-${rand()}`;
    const text = `hello @${alice.handle} and @nobody_${rand()} and @${alice.handle.toUpperCase()}`;
    const res = await api('POST', '/v1/posts', { json: { text }, token: bob.token, headers: { 'Idempotency-Key': key } });
    bobPost = expectStatus(res, 202);
    assert.equal(res.headers.location, `/v1/posts/${bobPost.id}`);
    assert.equal(bobPost.text, text);
    assert.deepEqual(bobPost.author, { id: bob.id, handle: bob.handle, display_name: bob.display_name });
    assert.deepEqual(bobPost.mentions, [alice.id]);
    assert.equal(bobPost.reply_to, null);

    // The same request again is the same post; another body under the same key is a 422.
    const again = expectStatus(await api('POST', '/v1/posts', { json: { text }, token: bob.token, headers: { 'Idempotency-Key': key } }), 202);
    assert.deepEqual(again, bobPost);
    expectStatus(await api('POST', '/v1/posts', { json: { text: `${text}!` }, token: bob.token, headers: { 'Idempotency-Key': key } }), 422);

    const reply = await api('POST', '/v1/posts', { json: { text: 'a reply', reply_to: bobPost.id }, token: alice.token });
    aliceReply = expectStatus(reply, 202);
    assert.equal(aliceReply.reply_to, bobPost.id);
    assert.deepEqual(aliceReply.mentions, []);
    const withNull = expectStatus(await api('POST', '/v1/posts', { json: { text: 'not a reply', reply_to: null }, token: alice.token }), 202);
    assert.equal(withNull.reply_to, null);

    expectStatus(await api('POST', '/v1/posts', { json: { text: 'to nowhere', reply_to: '1' }, token: alice.token }), 422);

    // Text limits count characters (code points), not bytes.
    const longest = expectStatus(await api('POST', '/v1/posts', { json: { text: '🙂'.repeat(5000) }, token: users.carol.token }), 202);
    assert.equal([...longest.text].length, 5000);
    carolPost = longest;
  });

  test('Posts: delivery status, for the author only', async () => {
    const { alice, bob } = users;
    let status;
    for (let i = 0; i < 200; i++) {
      status = expectStatus(await api('GET', '/v1/posts/{id}/delivery', { params: { id: bobPost.id }, token: bob.token }), 200);
      if (status.state === 'done') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(status.post, bobPost.id);
    assert.equal(status.state, 'done');
    assert.equal(status.fanout, 'timelines');
    assert.equal(status.queued_at, bobPost.created_at);
    assert.ok(status.finished_at >= status.started_at);
    expectStatus(await api('GET', '/v1/posts/{id}/delivery', { params: { id: bobPost.id }, token: alice.token }), 403);
    expectStatus(await api('GET', '/v1/posts/{id}/delivery', { params: { id: '1' }, token: bob.token }), 404);
    expectStatus(await api('GET', '/v1/posts/{id}/delivery', { params: { id: 'nope' }, token: bob.token }), 400);
    expectStatus(await api('GET', '/v1/posts/{id}/delivery', { params: { id: bobPost.id } }), 401);
  });

  test('Posts: publishing rejects bad input with 400 and 415', async () => {
    const newPost = spec.components.schemas.NewPost;
    const rejected = [
      {},
      { text: '' },
      { text: ' \t\r\n ' },
      { text: 'x'.repeat(5001) },
      { text: 5 },
      { text: null },
      { text: 'ok', reply_to: 12 },
      { text: 'ok', reply_to: 'abc' },
      { text: 'ok', reply_to: '0' },
      { text: 'ok', extra: true },
      ['text'],
    ];
    for (const json of rejected) {
      expectStatus(await api('POST', '/v1/posts', { json, token: users.alice.token }), 400);
      assert.ok(!validator(newPost, false)(json), `the NewPost schema accepts ${JSON.stringify(json)}, the server does not`);
    }
    expectStatus(await api('POST', '/v1/posts', { body: '{"text": "x"', token: users.alice.token }), 400);
    for (const key of ['has space', 'k'.repeat(256), 'tab\tkey']) {
      expectStatus(await api('POST', '/v1/posts', { json: { text: 'ok' }, token: users.alice.token, headers: { 'Idempotency-Key': key } }), 400);
    }
    for (const contentType of [null, 'text/plain']) {
      expectStatus(await api('POST', '/v1/posts', { json: { text: 'ok' }, token: users.alice.token, contentType }), 415);
    }
  });

  test('Timeline: followed authors\' posts arrive, newest first, and page', async () => {
    const { alice } = users;
    const timeline = async (query = {}) =>
      expectStatus(await api('GET', '/v1/timeline', { query, token: alice.token }), 200);
    // Fan-out is asynchronous: wait (bounded) for bob's post and alice's own reply.
    const items = await waitFor("bob's post and alice's reply in alice's timeline", async () => {
      const { items: got } = await timeline({ limit: '100' });
      return [[bobPost.id, aliceReply.id].every((id) => got.some((p) => p.id === id)), got];
    });
    const ids = items.map((p) => p.id);
    assert.ok(ids.includes(bobPost.id), "bob's post never reached alice's timeline");
    assert.ok(ids.includes(aliceReply.id), "alice's own post never reached her timeline");
    assert.deepEqual(ids, [...ids].sort((a, b) => (BigInt(b) > BigInt(a) ? 1 : -1)), 'newest first');
    assert.deepEqual(items.find((p) => p.id === bobPost.id), bobPost);
    // One at a time, the pages add up to the same list.
    const paged = await oneByOne(timeline, ids.length + 1);
    // A post fanned out meanwhile may come first; the pages hold the list, in its order.
    assert.deepEqual(paged.filter((id) => ids.includes(id)), ids);
    for (const query of [{ limit: '0' }, { limit: '101' }, { limit: 'x' }, { cursor: 'nope' }, { cursor: '0' }]) {
      expectStatus(await api('GET', '/v1/timeline', { query, token: alice.token }), 400);
    }
  });

  test("Posts: read, list an author's posts, delete", async () => {
    const { alice, bob } = users;
    const got = expectStatus(await api('GET', '/v1/posts/{id}', { params: { id: bobPost.id }, token: alice.token }), 200);
    assert.deepEqual(got, bobPost);
    expectStatus(await api('GET', '/v1/posts/{id}', { params: { id: '1' }, token: alice.token }), 404);

    const extra = expectStatus(await api('POST', '/v1/posts', { json: { text: 'second' }, token: bob.token }), 202);
    const page1 = expectStatus(await api('GET', '/v1/users/{id}/posts', { params: { id: bob.id }, query: { limit: '1' }, token: alice.token }), 200);
    assert.deepEqual(page1.items.map((p) => p.id), [extra.id]);
    assert.ok(page1.next_cursor, 'a first page of one with two posts has a next_cursor');
    const page2 = expectStatus(await api('GET', '/v1/users/{id}/posts', { params: { id: bob.id }, query: { limit: '1', cursor: page1.next_cursor }, token: alice.token }), 200);
    assert.deepEqual(page2.items, [bobPost]);

    const profile = expectStatus(await api('GET', '/v1/users/{id}', { params: { id: bob.id }, token: bob.token }), 200);
    assert.equal(profile.posts_count, 2);

    expectStatus(await api('DELETE', '/v1/posts/{id}', { params: { id: bobPost.id }, token: alice.token }), 403);
    expectStatus(await api('DELETE', '/v1/posts/{id}', { params: { id: bobPost.id }, token: bob.token }), 204);
    expectStatus(await api('GET', '/v1/posts/{id}', { params: { id: bobPost.id }, token: alice.token }), 404);
    expectStatus(await api('DELETE', '/v1/posts/{id}', { params: { id: bobPost.id }, token: bob.token }), 404);
    expectStatus(await api('DELETE', '/v1/posts/{id}', { params: { id: '1' }, token: bob.token }), 404);
    const left = expectStatus(await api('GET', '/v1/users/{id}/posts', { params: { id: bob.id }, token: bob.token }), 200);
    assert.deepEqual(left.items.map((p) => p.id), [extra.id]);
    assert.equal(left.next_cursor, null);

    // Replying to the deleted post is a 422; the reply made before it stays readable.
    expectStatus(await api('POST', '/v1/posts', { json: { text: 'late', reply_to: bobPost.id }, token: alice.token }), 422);
    const stays = expectStatus(await api('GET', '/v1/posts/{id}', { params: { id: aliceReply.id }, token: bob.token }), 200);
    assert.equal(stays.reply_to, bobPost.id);
    expectStatus(await api('GET', '/v1/posts/{id}', { params: { id: carolPost.id }, token: bob.token }), 200);
    // A deleted post is gone from timelines at once (left out when read, retracted later).
    const tl = expectStatus(await api('GET', '/v1/timeline', { query: { limit: '100' }, token: alice.token }), 200);
    assert.ok(!tl.items.some((p) => p.id === bobPost.id), 'a deleted post is still in a timeline');
  });

  test('Posts: replaying the Idempotency-Key of a deleted post is a 409', async () => {
    const key = `gone-${rand()}`;
    const opts = { json: { text: 'short-lived' }, token: users.alice.token, headers: { 'Idempotency-Key': key } };
    const post = expectStatus(await api('POST', '/v1/posts', opts), 202);
    expectStatus(await api('DELETE', '/v1/posts/{id}', { params: { id: post.id }, token: users.alice.token }), 204);
    expectStatus(await api('POST', '/v1/posts', opts), 409);
    // Keys are per caller: bob may use the same key.
    expectStatus(await api('POST', '/v1/posts', { ...opts, token: users.bob.token }), 202);
  });

  // ---- interactions and notifications, among users of their own -----------------------------
  // ann writes; ben, cat and dan act on her posts; dan follows ben, so ben's reposts reach dan.
  const social = {};
  let annPost, catReply, benMention;
  const notifications = async (who, query = {}) =>
    expectStatus(await api('GET', '/v1/notifications', { query: { limit: '100', ...query }, token: who.token }), 200);
  const unread = async (who) =>
    expectStatus(await api('GET', '/v1/notifications/unread_count', { token: who.token }), 200).count;
  const timelineOf = async (who) =>
    expectStatus(await api('GET', '/v1/timeline', { query: { limit: '100' }, token: who.token }), 200).items;
  // Waits for post id in who's timeline; returns its entry.
  const timelineEntry = (who, id, what) => waitFor(what, async () => {
    const items = await timelineOf(who);
    const hit = items.find((p) => p.id === id);
    return hit ? [true, hit] : [false, items];
  });
  const getPost = async (id, who = social.ann) =>
    expectStatus(await api('GET', '/v1/posts/{id}', { params: { id }, token: who.token }), 200);
  const newestFirst = (ids) => ids.every((id, i) => i === 0 || BigInt(ids[i - 1]) >= BigInt(id));
  const actorIds = (n) => n.actors.map((u) => u.id);
  const group = (items, type, postId) => items.find((n) => n.type === type && (postId === undefined || n.post?.id === postId));
  const follow = async (who, whom, method = 'PUT') =>
    (await api(method, '/v1/users/{id}/follow', { params: { id: whom.id }, token: who.token })).status;

  test('Posts: likes count at once, are idempotent, and 404 on unknown or deleted posts', async () => {
    for (const name of ['ann', 'ben', 'cat', 'dan', 'eve']) {
      const reg = expectStatus(await api('POST', '/v1/users', { json: { handle: newHandle(name) } }), 201);
      social[name] = { ...reg.user, token: reg.token };
    }
    const { ann, ben, cat } = social;
    annPost = expectStatus(await api('POST', '/v1/posts', { json: { text: 'likeable' }, token: ann.token }), 202);
    const like = (who, method = 'PUT', id = annPost.id) => api(method, '/v1/posts/{id}/like', { params: { id }, token: who.token });
    expectStatus(await like(ben), 204);
    expectStatus(await like(ben), 204); // idempotent
    expectStatus(await like(cat), 204);
    expectStatus(await like(ann), 204); // your own post: counted, no notification
    assert.equal((await getPost(annPost.id)).like_count, 3);
    expectStatus(await like(cat, 'DELETE'), 204);
    expectStatus(await like(cat, 'DELETE'), 204); // idempotent
    assert.equal((await getPost(annPost.id)).like_count, 2);
    expectStatus(await like(cat), 204);
    assert.equal((await getPost(annPost.id)).like_count, 3);

    for (const method of ['PUT', 'DELETE']) expectStatus(await like(ben, method, '1'), 404);
    const gone = expectStatus(await api('POST', '/v1/posts', { json: { text: 'soon gone' }, token: ann.token }), 202);
    expectStatus(await api('DELETE', '/v1/posts/{id}', { params: { id: gone.id }, token: ann.token }), 204);
    for (const [method, template] of [['PUT', '/v1/posts/{id}/like'], ['DELETE', '/v1/posts/{id}/like'],
      ['POST', '/v1/posts/{id}/repost'], ['DELETE', '/v1/posts/{id}/repost']]) {
      for (const id of [gone.id, '1']) {
        const res = expectStatus(await api(method, template, { params: { id }, token: ben.token }), 404);
        assert.equal(res.detail, 'post not found');
      }
    }
  });

  test("Posts: a repost reaches the reposter's followers' timelines with reposted_by", async () => {
    const { ann, ben, dan } = social;
    assert.equal(await follow(dan, ben), 204);
    const repost = () => api('POST', '/v1/posts/{id}/repost', { params: { id: annPost.id }, token: ben.token });
    const res = await repost();
    const body = expectStatus(res, 202);
    assert.equal(body.id, annPost.id);
    assert.deepEqual(body.author, annPost.author);
    assert.equal(body.repost_count, 1);
    assert.equal(body.like_count, 3);
    assert.ok(!('reposted_by' in body), 'the repost answer is the post itself');
    assert.equal(res.headers.location, undefined);
    assert.equal(expectStatus(await repost(), 202).repost_count, 1); // idempotent
    const read = await getPost(annPost.id, dan);
    assert.equal(read.repost_count, 1);
    assert.ok(!('reposted_by' in read), 'reposted_by is for timelines only');

    // dan follows ben, not ann: ann's post reaches dan only through ben's repost.
    const entry = await timelineEntry(dan, annPost.id, "ben's repost in dan's timeline");
    assert.deepEqual(entry.reposted_by, { id: ben.id, handle: ben.handle });
    const { reposted_by: _, ...plain } = entry;
    assert.deepEqual(plain, await getPost(annPost.id, dan));
    // ann's own timeline has her post as her own, not as a repost.
    const own = await timelineEntry(ann, annPost.id, "ann's post in her timeline");
    assert.ok(!('reposted_by' in own));
  });

  test('Notifications: follow, like, repost, reply and mention arrive grouped, newest first', async () => {
    const { ann, ben, cat } = social;
    assert.equal(await follow(ben, ann), 204);
    assert.equal(await follow(cat, ann), 204);
    catReply = expectStatus(await api('POST', '/v1/posts', { json: { text: 'nice!', reply_to: annPost.id }, token: cat.token }), 202);
    benMention = expectStatus(await api('POST', '/v1/posts', { json: { text: `hi @${ann.handle}` }, token: ben.token }), 202);
    // Replying to yourself and mentioning yourself notify nobody.
    const selfReply = expectStatus(await api('POST', '/v1/posts', { json: { text: `me, @${ann.handle}`, reply_to: annPost.id }, token: ann.token }), 202);

    const complete = (items) => {
      const follows = items.filter((n) => n.type === 'follow').flatMap(actorIds);
      return follows.includes(ben.id) && follows.includes(cat.id) &&
        group(items, 'like', annPost.id)?.actor_count === 2 && group(items, 'repost', annPost.id) &&
        group(items, 'reply', catReply.id) && group(items, 'mention', benMention.id);
    };
    const { items, next_cursor } = await waitFor("ann's notifications", async () => {
      const page = await notifications(ann);
      return [complete(page.items), page];
    });
    assert.equal(next_cursor, null);
    assert.ok(newestFirst(items.map((n) => n.id)), 'newest activity first');
    assert.ok(items.every((n, i) => i === 0 || items[i - 1].created_at >= n.created_at), 'created_at follows id');
    assert.ok(items.every((n) => n.read === false), 'nothing is read yet');
    assert.ok(!items.some((n) => n.post?.id === selfReply.id), 'no notification for your own reply or mention');

    const like = group(items, 'like', annPost.id);
    assert.deepEqual(actorIds(like), [cat.id, ben.id], 'actors newest first (cat liked again last), not ann herself');
    assert.deepEqual(like.actors[0], expectStatus(await api('GET', '/v1/users/{id}', { params: { id: cat.id }, token: ann.token }), 200));
    assert.equal(like.post.like_count, 3);
    const repost = group(items, 'repost', annPost.id);
    assert.deepEqual([actorIds(repost), repost.actor_count], [[ben.id], 1]);
    const reply = group(items, 'reply', catReply.id);
    assert.deepEqual([actorIds(reply), reply.actor_count, reply.post.reply_to], [[cat.id], 1, annPost.id]);
    const mention = group(items, 'mention', benMention.id);
    assert.deepEqual([actorIds(mention), mention.post.mentions], [[ben.id], [ann.id]]);
    for (const n of items.filter((x) => x.type === 'follow')) assert.ok(!('post' in n), 'a follow concerns no post');
    assert.equal(await unread(ann), items.length);

    // One at a time, the pages add up to the same list.
    const paged = await oneByOne((query) => notifications(ann, query), items.length + 1);
    assert.deepEqual(paged, items.map((n) => n.id));

    // types filters.
    for (const types of ['like,repost', 'follow', 'reply,reply', 'mention,follow,reply', 'follow,like,repost,reply,mention']) {
      const wanted = types.split(',');
      const got = (await notifications(ann, { types })).items;
      assert.deepEqual(got.map((n) => n.id), items.filter((n) => wanted.includes(n.type)).map((n) => n.id), `types=${types}`);
    }
    for (const types of ['', 'likes', 'Like', 'like,', ',like', 'like,,repost', 'like repost', 'follow;like']) {
      const res = expectStatus(await api('GET', '/v1/notifications', { query: { types }, token: ann.token }), 400);
      assert.match(res.detail, /^types must be/);
    }
    assert.equal(expectStatus(await api('GET', '/v1/notifications', { query: { types: 'follow', limit: '0' }, token: ann.token }), 400).detail,
      'limit must be an integer from 1 to 100');
    const empty = await notifications(ben, { types: 'reply' });
    assert.deepEqual(empty, { items: [], next_cursor: null });
  });

  test('Notifications: the read mark and the unread count', async () => {
    const { ann, dan } = social;
    const markRead = (json, who = ann) => api('POST', '/v1/notifications/read', { json, token: who.token });
    const { items } = await notifications(ann);
    assert.ok(items.length >= 5, `only ${items.length} notifications`);
    expectStatus(await markRead({ up_to: items[1].id }), 204);
    const after = (await notifications(ann)).items;
    assert.deepEqual(after.map((n) => n.read), items.map((_, i) => i === 0 ? false : true));
    assert.equal(await unread(ann), 1);
    expectStatus(await markRead({ up_to: items.at(-1).id }), 204); // never moves back
    assert.equal(await unread(ann), 1);
    expectStatus(await markRead({ up_to: '9007199254740991' }), 204);
    assert.equal(await unread(ann), 0);
    assert.ok((await notifications(ann)).items.every((n) => n.read));
    expectStatus(await markRead({ up_to: '1' }, dan), 204); // nothing to mark: still 204
    assert.equal(await unread(dan), 0);

    // The mark stopped at the newest notification: a new actor makes the like group unread again.
    expectStatus(await api('PUT', '/v1/posts/{id}/like', { params: { id: annPost.id }, token: dan.token }), 204);
    const bumped = await waitFor('the like group bumped by dan', async () => {
      const page = await notifications(ann);
      return [page.items[0]?.type === 'like' && page.items[0].actors[0]?.id === dan.id, page.items];
    });
    const like = bumped[0];
    assert.equal(like.read, false);
    assert.equal(like.actor_count, 3);
    assert.ok(BigInt(like.id) > BigInt(items[0].id), 'a bumped group gets a newer id');
    assert.ok(bumped.slice(1).every((n) => n.read));
    assert.equal(await unread(ann), 1);
    expectStatus(await markRead({ up_to: like.id }), 204);
    assert.equal(await unread(ann), 0);

    const markReadSchema = spec.components.schemas.MarkRead;
    for (const json of [{}, { up_to: 5 }, { up_to: '0' }, { up_to: 'abc' }, { up_to: null }, { up_to: '01' },
      { up_to: '12345678901234567' }, { up_to: '1', extra: 1 }, [], 'up_to']) {
      expectStatus(await markRead(json), 400);
      assert.ok(!validator(markReadSchema, false)(json), `the MarkRead schema accepts ${JSON.stringify(json)}, the server does not`);
    }
    // 2^53 has the shape of an Id but is out of range (the Id description says so; its pattern cannot).
    expectStatus(await markRead({ up_to: '9007199254740992' }), 400);
    for (const body of ['{"up_to":', '', '{"up_to":"1","up_to":"2"}']) {
      expectStatus(await api('POST', '/v1/notifications/read', { body, contentType: 'application/json', token: ann.token }), 400);
    }
    for (const contentType of [null, 'text/plain']) {
      expectStatus(await api('POST', '/v1/notifications/read', { json: { up_to: '1' }, contentType, token: ann.token }), 415);
    }
  });

  test('Markers: GET and PUT /v1/markers, forward only, sharing the read mark', async () => {
    const { ann } = social;
    const reg = expectStatus(await api('POST', '/v1/users', { json: { handle: newHandle('mark') } }), 201);
    const fay = { ...reg.user, token: reg.token };
    const get = (who) => api('GET', '/v1/markers', { token: who.token });
    const put = (json, who = fay) => api('PUT', '/v1/markers', { json, token: who.token });
    assert.deepEqual(expectStatus(await get(fay), 200), { home: null, notifications: null });
    assert.deepEqual(expectStatus(await put({ home: '374267981733952' }), 200),
      { home: '374267981733952', notifications: null });
    // A lower id changes nothing; no notification yet: the notifications marker stays null.
    assert.deepEqual(expectStatus(await put({ home: '374267981733000', notifications: '5' }), 200),
      { home: '374267981733952', notifications: null });
    assert.deepEqual(expectStatus(await get(fay), 200), { home: '374267981733952', notifications: null });
    // ann's notifications marker is her read mark (the test before marked everything read).
    const newest = (await notifications(ann)).items[0].id;
    const markers = expectStatus(await get(ann), 200);
    assert.equal(markers.notifications, newest);
    assert.deepEqual(expectStatus(await put({ notifications: '1' }, ann), 200), markers);

    const updateSchema = spec.components.schemas.MarkersUpdate;
    for (const json of [{}, { home: 5 }, { home: '0' }, { notifications: 'abc' }, { home: null },
      { home: '01' }, { home: '12345678901234567' }, { home: '1', extra: 1 }, [], 'home']) {
      expectStatus(await put(json), 400);
      assert.ok(!validator(updateSchema, false)(json), `the MarkersUpdate schema accepts ${JSON.stringify(json)}, the server does not`);
    }
    expectStatus(await put({ notifications: '9007199254740992' }), 400);
    for (const contentType of [null, 'text/plain']) {
      expectStatus(await api('PUT', '/v1/markers', { json: { home: '1' }, contentType, token: fay.token }), 415);
    }
    assert.deepEqual(expectStatus(await get(fay), 200), { home: '374267981733952', notifications: null });
  });

  test('Posts: undoing a repost and a like takes back their entries and notifications', async () => {
    const { ann, ben, dan } = social;
    const unrepost = () => api('DELETE', '/v1/posts/{id}/repost', { params: { id: annPost.id }, token: ben.token });
    expectStatus(await unrepost(), 204);
    expectStatus(await unrepost(), 204); // idempotent
    assert.equal((await getPost(annPost.id)).repost_count, 0);
    await waitFor("the repost leaving dan's timeline", async () => {
      const items = await timelineOf(dan);
      return [!items.some((p) => p.id === annPost.id), items];
    });
    expectStatus(await api('DELETE', '/v1/posts/{id}/like', { params: { id: annPost.id }, token: dan.token }), 204);
    await waitFor("ben and dan leaving ann's repost and like groups", async () => {
      const { items } = await notifications(ann);
      const like = group(items, 'like', annPost.id);
      return [!group(items, 'repost', annPost.id) && like?.actor_count === 2 && !actorIds(like).includes(dan.id), items];
    });
  });

  test('Users: block and unblock', async () => {
    const { ann, ben, dan, eve } = social;
    const block = (who, whom, method = 'PUT') => api(method, '/v1/users/{id}/block', { params: { id: whom.id }, token: who.token });
    const blocks = async (who, query = {}) => expectStatus(await api('GET', '/v1/blocks', { query, token: who.token }), 200);
    // Each reads their own list: across a block, the other's lists do not exist (404).
    const followingOf = async (who) =>
      expectStatus(await api('GET', '/v1/users/{id}/following', { params: { id: who.id }, token: who.token }), 200).items.map((u) => u.id);
    assert.equal(await follow(dan, ann), 204);
    assert.equal(await follow(ann, dan), 204);
    assert.deepEqual((await followingOf(dan)).sort(), [ann.id, ben.id].sort());
    await waitFor("dan's follow notice", async () => {
      const { items } = await notifications(ann, { types: 'follow' });
      return [items.flatMap(actorIds).includes(dan.id), items];
    });

    expectStatus(await block(ann, dan), 204);
    expectStatus(await block(ann, dan), 204); // idempotent
    assert.deepEqual((await blocks(ann)).items.map((u) => u.id), [dan.id]);
    assert.deepEqual(await blocks(dan), { items: [], next_cursor: null }, 'a block is listed by the blocker only');
    // The follows ended both ways, at once; neither may follow the other now.
    assert.deepEqual(await followingOf(dan), [ben.id]);
    assert.deepEqual(await followingOf(ann), []);
    for (const [who, whom] of [[ann, dan], [dan, ann]]) {
      const res = await api('GET', '/v1/users/{id}/following', { params: { id: whom.id }, token: who.token });
      assert.equal(expectStatus(res, 404).detail, 'user not found', 'a blocked user\'s list is absent');
    }
    const profile = expectStatus(await api('GET', '/v1/users/{id}', { params: { id: dan.id }, token: dan.token }), 200);
    assert.deepEqual([profile.following_count, profile.followers_count], [1, 0]);
    for (const [who, whom] of [[dan, ann], [ann, dan]]) {
      const res = await api('PUT', '/v1/users/{id}/follow', { params: { id: whom.id }, token: who.token });
      assert.equal(expectStatus(res, 403).detail, 'you cannot follow a user you blocked or who blocked you');
    }
    assert.equal(await follow(dan, ann, 'DELETE'), 204); // unfollowing stays allowed
    // dan is left out of ann's notifications at once (and scrubbed by the engine later).
    assert.ok(!(await notifications(ann)).items.some((n) => actorIds(n).includes(dan.id)), 'a blocked actor is still shown');

    for (const method of ['PUT', 'DELETE']) {
      const self = expectStatus(await block(ann, ann, method), 422);
      assert.equal(self.detail, 'you cannot block yourself');
      expectStatus(await block(ann, { id: '1' }, method), 404);
    }
    // Most recent block first, one page at a time.
    expectStatus(await block(ann, eve), 204);
    const first = await blocks(ann, { limit: '1' });
    assert.deepEqual(first.items.map((u) => u.id), [eve.id]);
    assert.ok(first.next_cursor);
    const second = await blocks(ann, { limit: '1', cursor: first.next_cursor });
    assert.deepEqual(second.items.map((u) => u.id), [dan.id]);
    assert.equal(second.next_cursor, null);

    expectStatus(await block(ann, dan, 'DELETE'), 204);
    expectStatus(await block(ann, dan, 'DELETE'), 204); // idempotent
    expectStatus(await block(ann, ben, 'DELETE'), 204); // never blocked
    assert.deepEqual((await blocks(ann)).items.map((u) => u.id), [eve.id]);
    assert.deepEqual(await followingOf(dan), [ben.id], 'unblocking does not restore follows');
    assert.equal(await follow(dan, ann), 204, 'following is allowed again');
    assert.equal(await follow(dan, ann, 'DELETE'), 204);
    expectStatus(await block(ann, eve, 'DELETE'), 204);
    assert.deepEqual(await blocks(ann), { items: [], next_cursor: null });
  });

  test('Users: mute and unmute', async () => {
    const { ann, ben, cat } = social;
    const mute = (who, whom, method = 'PUT') => api(method, '/v1/users/{id}/mute', { params: { id: whom.id }, token: who.token });
    const mutes = async (who, query = {}) => expectStatus(await api('GET', '/v1/mutes', { query, token: who.token }), 200);
    assert.equal(await follow(ann, cat), 204);
    const catPost = expectStatus(await api('POST', '/v1/posts', { json: { text: 'from cat' }, token: cat.token }), 202);
    await waitFor("cat's post in ann's timeline", async () => {
      const items = await timelineOf(ann);
      return [items.some((p) => p.id === catPost.id), items];
    });
    const before = (await notifications(ann)).items;
    assert.ok(before.some((n) => actorIds(n).includes(cat.id)), 'cat acted on ann before the mute');

    expectStatus(await mute(ann, cat), 204);
    expectStatus(await mute(ann, cat), 204); // idempotent
    expectStatus(await mute(ann, ben), 204);
    const list = await mutes(ann);
    assert.deepEqual(list.items.map((u) => u.id), [ben.id, cat.id], 'most recent mute first');
    const page = await mutes(ann, { limit: '1' });
    assert.deepEqual(page.items.map((u) => u.id), [ben.id]);
    assert.deepEqual((await mutes(ann, { cursor: page.next_cursor })).items.map((u) => u.id), [cat.id]);
    // At once: cat's posts leave ann's timeline, cat's actions her notifications; follows stay.
    assert.ok(!(await timelineOf(ann)).some((p) => p.author.id === cat.id), "a muted author's post is still in the timeline");
    const after = (await notifications(ann)).items;
    assert.ok(!after.some((n) => actorIds(n).includes(cat.id) || actorIds(n).includes(ben.id)), 'a muted actor is still shown');
    assert.ok(!group(after, 'reply', catReply.id), "cat's reply is still notified");
    const following = expectStatus(await api('GET', '/v1/users/{id}/following', { params: { id: ann.id }, token: ann.token }), 200);
    assert.deepEqual(following.items.map((u) => u.id), [cat.id], 'a mute leaves follows alone');
    assert.deepEqual(await mutes(cat), { items: [], next_cursor: null });

    for (const method of ['PUT', 'DELETE']) {
      assert.equal(expectStatus(await mute(ann, ann, method), 422).detail, 'you cannot mute yourself');
      expectStatus(await mute(ann, { id: '1' }, method), 404);
    }
    expectStatus(await mute(ann, cat, 'DELETE'), 204);
    expectStatus(await mute(ann, cat, 'DELETE'), 204); // idempotent
    expectStatus(await mute(ann, ben, 'DELETE'), 204);
    assert.deepEqual(await mutes(ann), { items: [], next_cursor: null });
  });

  test('Posts: an Idempotency-Key is not claimed by a request refused for its reply_to', async () => {
    const key = `ref-${rand()}`;
    const opts = { token: social.ben.token, headers: { 'Idempotency-Key': key } };
    expectStatus(await api('POST', '/v1/posts', { ...opts, json: { text: 'oops', reply_to: '1' } }), 422);
    const post = expectStatus(await api('POST', '/v1/posts', { ...opts, json: { text: 'fixed' } }), 202);
    assert.deepEqual(expectStatus(await api('POST', '/v1/posts', { ...opts, json: { text: 'fixed' } }), 202), post);
    expectStatus(await api('POST', '/v1/posts', { ...opts, json: { text: 'other' } }), 422);
  });

  test('unknown routes get 404 and other methods 405 with Allow', async () => {
    for (const p of ['/v1/nothing', '/v1/users/', `/v1/users/${users.bob.id}/`, '/v1/users//follow', '//', '/v2/users', '/healthz/x',
      '/v1/notifications/', '/v1/notifications/x', '/v1/posts/1/like/x', '/v1/blocks/1', '/v1/users//block']) {
      for (const method of ['GET', 'POST', 'DELETE']) {
        const res = await unroutedCall(method, p);
        assert.equal(res.status, 404, `${method} ${p}`);
        assert.equal(res.body.detail, 'no such route');
      }
    }
    // Every path of the spec, under every method it does not serve.
    for (const [p, item] of Object.entries(spec.paths)) {
      const served = METHODS.filter((m) => item[m]).map((m) => m.toUpperCase());
      const allow = [...served.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]))].sort();
      for (const method of ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS']) {
        if (served.includes(method)) continue;
        const res = await unroutedCall(method, fill(p, { id: users.bob.id }));
        assert.equal(res.status, 405, `${method} ${p}`);
        assert.deepEqual(res.headers.allow.split(', ').sort(), allow, `${method} ${p}: Allow`);
      }
    }
  });

  test('without Redis: readiness fails and storage-backed routes answer 503 with Retry-After',
    { skip: NO_REDIS ? false : 'TIDINGS_URL_NO_REDIS is not set' }, async () => {
      const server = new URL(NO_REDIS);
      const ready = await api('GET', '/readyz', { server });
      assert.equal(expectStatus(ready, 503).checks.redis, 'down');
      assert.equal(ready.body.status, 'unavailable');
      expectStatus(await api('GET', '/healthz', { server }), 200);
      const metrics = expectStatus(await api('GET', '/metrics', { server }), 200);
      assert.match(metrics, /^tidings_redis_up 0$/m);
      expectStatus(await api('GET', '/openapi.yaml', { server }), 200);
      expectStatus(await api('GET', '/', { server }), 200);
      expectStatus(await api('POST', '/v1/users', { server, json: { handle: newHandle('down') } }), 503);
      // A token that is not in the auth cache needs Redis to be checked.
      const token = `tdg_${users.alice.id}_${'A'.repeat(43)}`;
      const calls = [
        ['GET', '/v1/users/{id}'], ['PUT', '/v1/users/{id}/follow'], ['DELETE', '/v1/users/{id}/follow'],
        ['GET', '/v1/users/{id}/followers'], ['GET', '/v1/users/{id}/following'], ['GET', '/v1/users/{id}/posts'],
        ['POST', '/v1/posts'], ['GET', '/v1/posts/{id}'], ['DELETE', '/v1/posts/{id}'], ['GET', '/v1/timeline'],
        ['PUT', '/v1/users/{id}/block'], ['DELETE', '/v1/users/{id}/block'], ['PUT', '/v1/users/{id}/mute'],
        ['DELETE', '/v1/users/{id}/mute'], ['GET', '/v1/blocks'], ['GET', '/v1/mutes'],
        ['PUT', '/v1/posts/{id}/like'], ['DELETE', '/v1/posts/{id}/like'], ['POST', '/v1/posts/{id}/repost'],
        ['DELETE', '/v1/posts/{id}/repost'], ['GET', '/v1/notifications'], ['GET', '/v1/notifications/unread_count'],
        ['POST', '/v1/notifications/read'], ['POST', '/v1/tokens'], ['GET', '/v1/tokens'],
        ['DELETE', '/v1/tokens/current'], ['DELETE', '/v1/tokens/{id}'], ['POST', '/v1/stream/tickets'],
        ['GET', '/v1/markers'], ['PUT', '/v1/markers'],
      ];
      const bodies = { '/v1/posts': { text: 'x' }, '/v1/notifications/read': { up_to: '1' }, '/v1/tokens': { name: 'x' },
        '/v1/markers': { home: '1' } };
      for (const [method, template] of calls) {
        const res = await api(method, template, { server, token, params: { id: users.bob.id }, ...(bodies[template] ? { json: bodies[template] } : {}) });
        expectStatus(res, 503);
      }
    });

  test('Stream: a ticket opens one stream once; used or bad tickets are 401', async () => {
    const reg = expectStatus(await api('POST', '/v1/users', { json: { handle: newHandle('tkt') } }), 201);
    const { ticket, expires_at: expiresAt } = expectStatus(await api('POST', '/v1/stream/tickets', { token: reg.token }), 201);
    const left = Date.parse(expiresAt) - Date.now();
    assert.ok(left > 55000 && left <= 61000, `the ticket expires in ${left} ms`);
    // Open the stream with it (the head only), then hang up.
    const status = await new Promise((resolve, reject) => {
      const req = http.request({ host: base.hostname, port: base.port, method: 'GET', agent: false,
        path: `/v1/stream?ticket=${encodeURIComponent(ticket)}` });
      req.on('response', (res) => { resolve(res.statusCode); req.destroy(); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    observed.add('GET /v1/stream 200');
    expectStatus(await api('GET', '/v1/stream', { query: { ticket } }), 401);
    for (const bad of ['', 'x', `tkt_${reg.user.id}_${'A'.repeat(43)}`, reg.token]) {
      expectStatus(await api('GET', '/v1/stream', { query: { ticket: bad } }), 401);
    }
    expectStatus(await api('POST', '/v1/stream/tickets', {}), 401);
    // A ticket is no bearer token.
    const another = expectStatus(await api('POST', '/v1/stream/tickets', { token: reg.token }), 201);
    expectStatus(await api('GET', '/v1/me', { token: another.ticket }), 401);
  });

  test('Stream: live feed events arrive as the spec says; bad Last-Event-ID is 400', async () => {
    const suffix = Math.random().toString(36).slice(2, 10);
    const reg = async (name) => expectStatus(await api('POST', '/v1/users', { json: { handle: `${name}_${suffix}` } }), 201);
    const author = await reg('sa');
    const reader = await reg('sr');
    expectStatus(await api('PUT', '/v1/users/{id}/follow', { params: { id: author.user.id }, token: reader.token }), 204);
    const op = operations.get('GET /v1/stream').op;
    // Open the stream, wait for its preamble, post, and read until the post's feed event.
    let post;
    const got = await new Promise((resolve, reject) => {
      const req = http.request({ host: base.hostname, port: base.port, method: 'GET', agent: false,
        path: `/v1/stream?access_token=${encodeURIComponent(reader.token)}` });
      const timer = setTimeout(() => { req.destroy(); reject(new Error('no feed event within 30 s')); }, 30000);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', async (chunk) => {
          text += chunk;
          if (!post && text.includes('retry:')) {
            post = expectStatus(await api('POST', '/v1/posts', { token: author.token, json: { text: 'live' } }), 202);
          }
          // Whole frames only: a frame arrives in pieces (the server sends 256 bytes at a time).
          const frame = post && text.split('\n\n').slice(0, -1).find((f) => f.includes('event: feed') && f.includes(`"id":"${post.id}"`));
          if (frame) {
            clearTimeout(timer);
            req.destroy();
            resolve({ status: res.statusCode, headers: res.headers, text, frame });
          }
        });
        res.on('error', () => {});
      });
      req.on('error', (e) => { if (!post) reject(e); });
      req.end();
    });
    assert.equal(got.status, 200);
    assert.ok(op.responses['200'].content['text/event-stream'], 'the spec documents text/event-stream');
    assert.equal(mediaType(got), 'text/event-stream');
    assert.equal(got.headers['cache-control'], 'no-store');
    // The spec's Connection header: the end of the connection ends the body.
    assert.deepEqual(op.responses['200'].headers.Connection.schema.enum, ['close']);
    assert.equal(got.headers.connection, 'close');
    assert.equal(got.headers['transfer-encoding'], undefined, 'a close-delimited body is not chunked');
    assert.match(got.text, /^retry: [0-9]+\n\n/);
    const fields = Object.fromEntries(got.frame.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
    assertValid(spec.components.schemas.EventId, fields.id, 'feed event id');
    assertValid(spec.components.schemas.Post, JSON.parse(fields.data), 'feed event data');
    observed.add('GET /v1/stream 200');
    const preflight = await api('OPTIONS', '/v1/stream', {});
    expectStatus(preflight, 204);
    assert.equal(preflight.headers.allow, 'GET, OPTIONS');
    for (const bad of ['x', '1', '-1', '1-', '1-2-3']) {
      expectStatus(await api('GET', '/v1/stream', { token: reader.token, headers: { 'Last-Event-ID': bad } }), 400);
    }
  });

  test('Stream: every event of the StreamEvent union arrives and validates against its member', async () => {
    const suffix = Math.random().toString(36).slice(2, 10);
    const reg = async (name) => expectStatus(await api('POST', '/v1/users', { json: { handle: `${name}_${suffix}` } }), 201);
    const author = await reg('ea');
    const reader = await reg('er');
    const phone = expectStatus(await api('POST', '/v1/tokens', { token: reader.token, json: { name: 'phone' } }), 201);
    const doomed = expectStatus(await api('POST', '/v1/tokens', { token: reader.token, json: { name: 'old laptop' } }), 201);
    expectStatus(await api('PUT', '/v1/users/{id}/follow', { params: { id: author.user.id }, token: reader.token }), 204);
    // A raw stream: every frame with an `event:` line, as {event, id?, data}.
    const open = (token, headers = {}) => {
      const s = { text: '', events: [], ended: false };
      s.req = http.request({ host: base.hostname, port: base.port, method: 'GET', agent: false, headers,
        path: `/v1/stream?access_token=${encodeURIComponent(token)}` });
      s.req.on('response', (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          s.text += chunk;
          let cut;
          while ((cut = s.text.indexOf('\n\n')) >= 0) {
            const frame = s.text.slice(0, cut);
            s.text = s.text.slice(cut + 2);
            const f = Object.fromEntries(frame.split('\n').filter((l) => !l.startsWith(':'))
              .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
            if (f.event) s.events.push({ event: f.event, ...('id' in f ? { id: f.id } : {}), data: JSON.parse(f.data) });
          }
        });
        res.on('end', () => { s.ended = true; });
        res.on('error', () => {});
      });
      s.req.on('error', () => {});
      s.req.end();
      return s;
    };
    const until = async (s, what, pred) => {
      const deadline = Date.now() + 20000;
      for (;;) {
        const ev = s.events.find(pred);
        if (ev) return ev;
        assert.ok(Date.now() < deadline, `no ${what} within 20 s; got ${s.events.map((e) => e.event).join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const main = open(reader.token);
    const old = open(doomed.token);
    await until(main, 'open stream', () => true).catch(() => {}); // nothing yet: just let it open
    await new Promise((r) => setTimeout(r, 300));
    const mine = expectStatus(await api('POST', '/v1/posts', { token: reader.token, json: { text: 'like me' } }), 202);
    const theirs = expectStatus(await api('POST', '/v1/posts', { token: author.token, json: { text: 'to all' } }), 202);
    await until(main, 'feed event', (e) => e.event === 'feed' && e.data.id === theirs.id);
    expectStatus(await api('PUT', '/v1/posts/{id}/like', { params: { id: mine.id }, token: author.token }), 204);
    await until(main, 'notification event', (e) => e.event === 'notification' && e.data.type === 'like');
    await until(main, 'counts event', (e) => e.event === 'counts' && e.data.notifications_unread === 1);
    expectStatus(await api('DELETE', '/v1/posts/{id}/like', { params: { id: mine.id }, token: author.token }), 204);
    await until(main, 'notification_removed event', (e) => e.event === 'notification_removed' && e.data.group_key === `like:${mine.id}`);
    expectStatus(await api('PUT', '/v1/markers', { token: phone.token, json: { home: theirs.id } }), 200);
    await until(main, 'marker event', (e) => e.event === 'marker' && e.data.home === theirs.id);
    expectStatus(await api('DELETE', '/v1/posts/{id}', { params: { id: theirs.id }, token: author.token }), 204);
    await until(main, 'delete event', (e) => e.event === 'delete' && e.data.id === theirs.id);
    expectStatus(await api('DELETE', '/v1/tokens/{id}', { params: { id: doomed.id }, token: reader.token }), 204);
    await until(old, 'revoked event', (e) => e.event === 'revoked');
    const future = open(reader.token, { 'Last-Event-ID': `${Date.now() + 3600000}-0` });
    await until(future, 'reset event', (e) => e.event === 'reset');
    for (const s of [main, old, future]) s.req.destroy();
    const union = spec.components.schemas.StreamEvent;
    const names = Object.keys(union.discriminator.mapping);
    const seen = new Set();
    for (const ev of [...main.events, ...old.events, ...future.events]) {
      assertValid(union, ev, `the ${ev.event} event`);
      assert.ok(names.includes(ev.event), `event ${ev.event} is not in StreamEvent`);
      seen.add(ev.event);
    }
    assert.deepEqual([...seen].sort(), [...names].sort(), 'every StreamEvent member was seen');
    assert.equal(union.oneOf.length, names.length, 'one union member per mapped name');
  });

  test('covered every operation and the documented error statuses', (t) => {
    const statuses = new Set([...observed].map((o) => o.split(' ').pop()));
    for (const key of operations.keys()) {
      assert.ok([...observed].some((o) => o.startsWith(`${key} 2`)), `${key} never answered 2xx in this run`);
    }
    const expected = ['400', '401', '403', '404', '405', '409', '413', '415', '422', ...(NO_REDIS ? ['503'] : [])];
    for (const s of expected) {
      assert.ok(statuses.has(s), `no ${s} was exercised`);
    }
    t.diagnostic(`checked ${checkedResponses} responses; ${observed.size} distinct operation/status pairs`);
  });
});
