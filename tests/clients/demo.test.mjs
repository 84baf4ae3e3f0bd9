// tests/clients/demo.test.mjs -- the demo page at GET /, driven in headless Chromium.
//
// Run: TIDINGS_URL=http://127.0.0.1:8080 TIDINGS_DEMO_OUT=/tmp/demo node --test tests/clients/demo.test.mjs
// (run_clients.sh browser starts a server and does this for ctest).
//
// Two people, each in their own headless Debian Chromium (playwright-core drives
// /usr/bin/chromium, or $CHROMIUM; nothing is downloaded) with a fresh profile directory, sign
// up on the page. Bob finds Ana by typing the start of her handle (the page's autocomplete, GET
// /v1/users/search) and follows her from the suggestions; Ana sees the follow arrive; Ana posts
// and the post appears on Bob's page through EventSource, with no timeline request in between
// (so it came live, not from a refetch); Bob likes and replies, and Ana's notifications update
// live. A second window of Ana's shows the same unread badge, both go up live on a repost, and
// marking read in one window clears the other from its stream alone (no request of its own).
// Both pages are screenshotted into TIDINGS_DEMO_OUT, and each screenshot is decoded and
// must not be blank (pixel variance, number of colours). Any uncaught page error fails the test.
// Every wait is bounded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const here = path.dirname(fileURLToPath(import.meta.url));
const toolsDir = path.resolve(here, '..', '..', 'tools');
const requireTool = createRequire(path.join(toolsDir, 'package.json'));
const { chromium } = requireTool('playwright-core');
const { PNG } = requireTool('pngjs');

const BASE = process.env.TIDINGS_URL;
if (!BASE) throw new Error('set TIDINGS_URL to the base URL of a running tidings server');
const OUT = process.env.TIDINGS_DEMO_OUT || mkdtempSync(path.join(tmpdir(), 'tidings-demo-'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 15000; // every wait for the page, in ms

// Chromium as root in a container: no sandbox, no GPU, and nothing that calls home.
const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Decodes a PNG and says how much it varies: a blank render has one colour and no variance.
function pictureStats(file) {
  const png = PNG.sync.read(readFileSync(file));
  const n = png.width * png.height;
  let sum = 0, sumSq = 0;
  const colours = new Set();
  for (let i = 0; i < png.data.length; i += 4) {
    const [r, g, b] = [png.data[i], png.data[i + 1], png.data[i + 2]];
    const y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    sum += y;
    sumSq += y * y;
    if (colours.size < 5000) colours.add((r << 16) | (g << 8) | b);
  }
  const mean = sum / n;
  return { width: png.width, height: png.height, variance: sumSq / n - mean * mean, colours: colours.size };
}

// One person: their own Chromium with a fresh --user-data-dir (Playwright's persistent
// context is how a profile directory is chosen), one page on the demo.
async function person(name) {
  const profile = mkdtempSync(path.join(tmpdir(), `tidings-chromium-${name}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
    timeout: 60000,
  });
  context.setDefaultTimeout(WAIT);
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${name}: console error: ${m.text()}`); });
  const requests = [];
  page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  const streams = []; // the full URLs of its event streams
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/v1/stream') streams.push(r.url()); });
  return { name, profile, context, page, problems, requests, streams };
}

async function signUp(p, handle, displayName) {
  await p.page.goto(BASE, { waitUntil: 'load', timeout: WAIT });
  assert.equal(await p.page.title(), 'Tidings — live demo');
  await p.page.fill('#signup-handle', handle);
  await p.page.fill('#signup-name', displayName);
  await p.page.click('#signup-btn');
  await p.page.waitForSelector('#me-card:not([hidden])');
  assert.equal(await p.page.textContent('#me-handle'), `@${handle}`);
  await p.page.waitForSelector('#stream-status[data-state="live"]');
  return (await p.page.textContent('#me-id')).trim();
}

describe('the demo page', () => {
  const people = [];
  let ana, bob;
  const suffix = randomBytes(3).toString('hex');
  const anaHandle = `ana_${suffix}`;
  const bobHandle = `bob_${suffix}`;
  let anaId;
  const text = `Hello @${bobHandle}, this is Tidings live (${suffix}). Posts fan out in milliseconds!`;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (tools/setup.sh --with-node)`);
    mkdirSync(OUT, { recursive: true });
    ana = await person('ana');
    people.push(ana);
    bob = await person('bob');
    people.push(bob);
  });

  after(async () => {
    for (const p of people) {
      await p.context.close().catch(() => {});
      rmSync(p.profile, { recursive: true, force: true });
    }
  });

  test('is served at / as HTML', async () => {
    const res = await fetch(`${BASE}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(await res.text(), /^<!doctype html>/i);
  });

  test('two people sign up and go live', async () => {
    anaId = await signUp(ana, anaHandle, 'Ana Example');
    await signUp(bob, bobHandle, 'Bob Builder');
    assert.match(anaId, /^[1-9][0-9]*$/);
  });

  test('bob finds ana by typing the start of her handle, picks her from the suggestions and follows; ana sees it live', async () => {
    // A prefix no handle starts with: no suggestions.
    const searched = bob.page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/users/search', { timeout: WAIT });
    await bob.page.fill('#follow-handle', `zz_nobody_${suffix}`);
    assert.equal((await searched).status(), 200);
    assert.equal(await bob.page.locator('#follow-suggestions li').count(), 0);
    // Typed a few letters at a time, in another case, with the @ a mention has.
    const typed = `@${anaHandle.slice(0, anaHandle.length - 1).toUpperCase()}`;
    await bob.page.fill('#follow-handle', '');
    await bob.page.type('#follow-handle', typed, { delay: 20 });
    const pick = `#follow-suggestions li[data-id="${anaId}"]`;
    await bob.page.waitForSelector(pick, { timeout: WAIT });
    assert.equal(await bob.page.getAttribute(pick, 'data-handle'), anaHandle);
    assert.equal(await bob.page.locator('#follow-suggestions li').count(), 1, 'only ana starts so');
    await bob.page.screenshot({ path: path.join(OUT, 'demo-bob-autocomplete.png') });
    const refetched = bob.page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/timeline', { timeout: WAIT });
    await bob.page.click(`${pick} button`);
    await bob.page.waitForSelector(`#following li[data-id="${anaId}"]`);
    assert.equal(await bob.page.locator('#follow-suggestions li').count(), 0, 'the suggestions close');
    assert.equal(await bob.page.inputValue('#follow-handle'), '');
    // The page fetches the timeline again shortly after a follow (for the backfill): let it,
    // so that what follows can tell a live arrival from a refetch.
    await refetched;
    await ana.page.waitForSelector('#notifications .notification[data-type="follow"]');
    assert.match(await ana.page.textContent('#notifications .notification[data-type="follow"]'), new RegExp(`@${bobHandle}`));
    assert.equal(await ana.page.textContent('#me-followers'), '1');
  });

  test("ana posts; the post appears on bob's page live, through EventSource", async () => {
    const mark = bob.requests.length;
    await ana.page.fill('#compose-text', text);
    await ana.page.click('#post-btn');
    await ana.page.waitForSelector(`#timeline .post:has-text("live (${suffix})")`);
    const post = bob.page.locator('#timeline .post', { hasText: `this is Tidings live (${suffix})` });
    await post.waitFor({ state: 'visible', timeout: WAIT });
    assert.match(await post.textContent(), new RegExp(`@${anaHandle}`));
    const fetched = bob.requests.slice(mark).filter((r) => r.endsWith('/v1/timeline'));
    assert.deepEqual(fetched, [], 'the post came by a timeline refetch, not by the stream');
    // Ana mentioned bob: his notifications show it live.
    await bob.page.waitForSelector('#notifications .notification[data-type="mention"]');
    await bob.page.waitForSelector('#unread:not([hidden])');
  });

  test("bob likes and replies; ana's notifications update live", async () => {
    const post = bob.page.locator('#timeline .post', { hasText: `this is Tidings live (${suffix})` });
    await post.locator('button.like').click();
    await bob.page.waitForFunction((s) => [...document.querySelectorAll('#timeline .post')]
      .some((el) => el.textContent.includes(s) && el.querySelector('button.like.on')?.textContent.includes('1')), suffix,
    { timeout: WAIT });
    await ana.page.waitForSelector('#notifications .notification[data-type="like"]');

    await post.getByRole('button', { name: /reply/ }).click();
    await bob.page.waitForSelector('#replying:not([hidden])');
    await bob.page.locator('#compose-text').press('End');
    await bob.page.locator('#compose-text').pressSequentially('welcome to Tidings!');
    await bob.page.click('#post-btn');
    await ana.page.waitForSelector('#notifications .notification[data-type="reply"]');
    assert.match(await ana.page.textContent('#notifications .notification[data-type="reply"]'), /welcome to Tidings!/);
    assert.notEqual(await ana.page.textContent('#unread'), '0');
  });

  // A second window of ana's (same profile, so the same stored token).
  let anaWindow2;
  const window2Requests = [];
  test("a second window of ana's shows the same live unread badge", async () => {
    anaWindow2 = await ana.context.newPage();
    anaWindow2.on('pageerror', (e) => ana.problems.push(`ana window 2: page error: ${e.message}`));
    anaWindow2.on('console', (m) => { if (m.type() === 'error') ana.problems.push(`ana window 2: console error: ${m.text()}`); });
    anaWindow2.on('request', (r) => window2Requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await anaWindow2.goto(BASE, { waitUntil: 'load', timeout: WAIT });
    await anaWindow2.waitForSelector('#stream-status[data-state="live"]');
    await anaWindow2.waitForSelector('#unread:not([hidden])');
    assert.equal(await anaWindow2.textContent('#unread'), await ana.page.textContent('#unread'));
    // Bob reposts ana's post, a new group: both badges go up live.
    const before = Number(await ana.page.textContent('#unread'));
    await bob.page.locator('#timeline .post', { hasText: `this is Tidings live (${suffix})` })
      .locator('button', { hasText: '↻' }).click();
    for (const w of [ana.page, anaWindow2]) {
      await w.waitForFunction((n) => Number(document.querySelector('#unread').textContent) === n, before + 1, { timeout: WAIT });
    }
  });

  test('ana marks her notifications read in one window; the other follows live', async () => {
    const asked = window2Requests.length;
    await ana.page.click('#mark-read');
    await ana.page.waitForSelector('#unread[hidden]', { state: 'attached' });
    assert.equal(await ana.page.locator('#notifications .notification.unread').count(), 0);
    // The other window hears it on its stream (counts and marker), with no request of its own.
    await anaWindow2.waitForSelector('#unread[hidden]', { state: 'attached' });
    await anaWindow2.waitForFunction(() => document.querySelectorAll('#notifications .notification.unread').length === 0,
      null, { timeout: WAIT });
    const since = window2Requests.slice(asked).filter((r) => r.includes('/v1/notifications'));
    assert.deepEqual(since, [], 'the second window kept in step from its stream alone');
  });

  test('screenshots of both pages are not blank', async (t) => {
    for (const p of [bob, ana]) {
      // animations: 'disabled' ends the "new" highlight, so the picture shows the page at rest.
      const file = path.join(OUT, `demo-${p.name}.png`);
      await p.page.screenshot({ path: file, animations: 'disabled' });
      const stats = pictureStats(file);
      assert.equal(stats.width, 1280);
      assert.ok(stats.variance > 200 && stats.colours > 50,
        `${file} looks blank: ${JSON.stringify(stats)}`);
      t.diagnostic(`${file}: ${stats.width}x${stats.height}, luminance variance ${stats.variance.toFixed(0)}, ` +
        `${stats.colours}${stats.colours >= 5000 ? '+' : ''} colours`);
    }
    // The same check on a blank page fails, so the check itself means something.
    const blank = path.join(OUT, 'blank.png');
    const page = await bob.context.newPage();
    await page.setContent('<html><body style="background:#fff"></body></html>');
    await page.screenshot({ path: blank });
    await page.close();
    const stats = pictureStats(blank);
    assert.ok(!(stats.variance > 200 && stats.colours > 50), `a blank page passed the check: ${JSON.stringify(stats)}`);
  });

  test('the stream was opened with a one-use ticket, never with the token in the URL', () => {
    for (const p of people) {
      assert.ok(p.streams.length > 0, `${p.name} opened no stream`);
      for (const r of p.streams) {
        const q = new URL(r).searchParams;
        assert.ok(q.get('ticket')?.startsWith('tkt_') && !q.has('access_token'), `${p.name}: ${r}`);
      }
    }
  });

  test('a pasted token signs in again; signing out revokes it', async () => {
    const token = (await bob.page.textContent('#me-token')).trim();
    // A second device token for bob, pasted into ana's page.
    const res = await bob.page.request.post(`${BASE}/v1/tokens`, {
      headers: { Authorization: `Bearer ${token}` }, data: { name: 'demo test' } });
    assert.equal(res.status(), 201);
    const second = (await res.json()).token;
    await ana.page.click('#signout-btn');
    await ana.page.waitForSelector('#signin-card:not([hidden])');
    await ana.page.fill('#token-input', second);
    await ana.page.click('#token-btn');
    await ana.page.waitForSelector('#stream-status[data-state="live"]');
    await ana.page.waitForSelector(`#timeline .post:has-text("live (${suffix})")`);
    // Signing out on ana's page revokes that token only: bob's page is still signed in.
    await ana.page.click('#signout-btn');
    await ana.page.waitForSelector('#signin-card:not([hidden])');
    const me = (t) => bob.page.request.get(`${BASE}/v1/me`, { headers: { Authorization: `Bearer ${t}` } });
    assert.equal((await me(second)).status(), 401);
    assert.equal((await me(token)).status(), 200);
  });

  test('no page error or console error', () => {
    assert.deepEqual(people.flatMap((p) => p.problems), []);
  });
});
