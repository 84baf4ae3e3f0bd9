// tests/clients/scenario.test.mts -- a real TypeScript client of openapi.yaml, end to end.
//
// run_clients.sh regenerates ./tidings-api.d.ts from openapi.yaml with openapi-typescript on
// every run, type-checks this file against it with tsc (strict), and runs the result with
// node --test against a running server (TIDINGS_URL). Every call goes through openapi-fetch
// typed by the generated `paths`, and the code reads the answers' fields by name, so a spec
// change that would break a generated client (a renamed path, field or parameter, a changed
// type or status) fails tsc, and a server that does not do what the spec says fails here.
//
// The live half uses the `eventsource` package, a WHATWG EventSource for Node: the stream is
// opened with ?access_token= as a browser would, through a loopback TCP relay that the test
// can cut to drop the connection the way a network would; EventSource then reconnects by itself
// after the server's `retry:` and sends Last-Event-ID, and the events missed meanwhile must be
// replayed, in order, without duplicates. An explicit resume with a Last-Event-ID header (a new
// EventSource whose fetch adds it) is checked too. Every wait is bounded.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import createClient, { type Client } from 'openapi-fetch';
import { EventSource, type FetchLikeResponse } from 'eventsource';
import type { components, paths } from './tidings-api.js';

type Schemas = components['schemas'];
type User = Schemas['User'];
type Post = Schemas['Post'];
type Notification = Schemas['Notification'];
type NotificationType = Schemas['NotificationType'];
type Problem = Schemas['Problem'];

const BASE = process.env.TIDINGS_URL;
if (!BASE) throw new Error('set TIDINGS_URL to the base URL of a running tidings server');
const base = new URL(BASE);

// ---- helpers -------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// Polls check() until it returns a value other than undefined; fails after ms.
async function waitFor<T>(what: string, ms: number, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

// A client per user: the token goes in the Authorization header of every request.
type Api = Client<paths>;
function client(token?: string): Api {
  return createClient<paths>({
    baseUrl: BASE,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    // openapi-fetch does not read `style`/`explode` from the spec; `types` is `form` with
    // `explode: false` (a comma-separated list), so say so here.
    querySerializer: { array: { style: 'form', explode: false } },
  });
}
const anonymous = client();

interface Account {
  user: User;
  token: string;
  api: Api;
}

const suffix = randomBytes(4).toString('hex');

async function register(name: string, displayName: string): Promise<Account> {
  const handle = `${name}_${suffix}`;
  const { data, error, response } = await anonymous.POST('/v1/users', {
    body: { handle, display_name: displayName },
  });
  assert.equal(response.status, 201, `register ${handle}: ${JSON.stringify(error)}`);
  assert.ok(data, 'registration answered no body');
  assert.equal(data.user.handle, handle);
  assert.equal(data.user.display_name, displayName);
  assert.equal(response.headers.get('location'), `/v1/users/${data.user.id}`);
  const counts: number[] = [data.user.followers_count, data.user.following_count, data.user.posts_count];
  assert.deepEqual(counts, [0, 0, 0]);
  return { user: data.user, token: data.token, api: client(data.token) };
}

function expectProblem(error: Problem | undefined, status: number, what: string): Problem {
  assert.ok(error, `${what}: expected a problem document`);
  assert.equal(error.status, status, `${what}: problem status`);
  assert.match(error.type, /^urn:tidings:problem:/);
  assert.ok(error.title.length > 0 && error.detail.length > 0, `${what}: title and detail`);
  return error;
}

// ---- a loopback relay that can drop its connections ----------------------------------------

// Forwards every connection to the server and remembers each request head it relayed, so the
// test can cut all live connections (a network drop) and see what the client sent afterwards.
class Relay {
  readonly heads: string[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  port = 0;

  constructor(target: URL) {
    this.server = net.createServer((down) => {
      const up = net.connect(Number(target.port), target.hostname);
      this.sockets.add(down).add(up);
      let head = '';
      down.on('data', (chunk: Buffer) => {
        if (!head.includes('\r\n\r\n')) {
          head += chunk.toString('latin1');
          if (head.includes('\r\n\r\n')) this.heads.push(head.slice(0, head.indexOf('\r\n\r\n')));
        }
      });
      down.pipe(up).pipe(down);
      const close = () => {
        down.destroy();
        up.destroy();
        this.sockets.delete(down);
        this.sockets.delete(up);
      };
      down.on('error', close).on('close', close);
      up.on('error', close).on('close', close);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  cut(): number {
    const n = this.sockets.size;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return n;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---- the event stream, through the `eventsource` package -----------------------------------

// The stream's events as the spec types them: its `text/event-stream` schema is the union
// StreamEvent, discriminated by `event`, and the generated file carries it; nothing here
// restates it. EVENT_NAMES must name every member once (tsc fails on a missing or unknown
// name), so the listeners below follow the spec as it grows.
type StreamEvent = paths['/v1/stream']['get']['responses'][200]['content']['text/event-stream'];
type EventName = StreamEvent['event'];
type EventOf<N extends EventName> = Extract<StreamEvent, { event: N }>;
const EVENT_NAMES: Record<EventName, true> = {
  feed: true, delete: true, notification: true, notification_removed: true,
  counts: true, marker: true, reset: true, revoked: true,
};
// An event's id (`revoked`, a stream's last event, has none).
const idOf = (e: StreamEvent): string => ('id' in e ? e.id : '');

// Opens GET /v1/stream with ?access_token= (as a browser's EventSource must) and collects its
// events. lastEventId, when given, is sent as the Last-Event-ID header of the first request.
class Stream {
  readonly events: StreamEvent[] = [];
  readonly errors: string[] = [];
  opens = 0;
  readonly es: EventSource;

  constructor(url: string, token: string, lastEventId?: string) {
    const target = `${url}${url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`;
    this.es = new EventSource(target, {
      fetch: (input, init): Promise<FetchLikeResponse> => {
        const headers: Record<string, string> = { ...init.headers };
        if (lastEventId && !headers['Last-Event-ID']) headers['Last-Event-ID'] = lastEventId;
        return fetch(input, { ...init, headers });
      },
    });
    this.es.addEventListener('open', () => { this.opens++; });
    this.es.addEventListener('error', (e) => { this.errors.push(String(e.message ?? 'error')); });
    for (const name of Object.keys(EVENT_NAMES) as EventName[]) {
      this.es.addEventListener(name, (e) => {
        const ev = { event: name, data: JSON.parse(e.data) as unknown, ...(name === 'revoked' ? {} : { id: e.lastEventId }) };
        this.events.push(ev as StreamEvent);
      });
    }
  }

  // The first event named name that matches, within ms.
  first<N extends EventName>(name: N, what: string, ms: number, match: (e: EventOf<N>) => boolean): Promise<EventOf<N>> {
    return waitFor(what, ms, () =>
      this.events.find((e): e is EventOf<N> => e.event === name && match(e as EventOf<N>)));
  }

  opened(ms = 10000): Promise<true> {
    return waitFor('the stream to open', ms, () => (this.es.readyState === this.es.OPEN ? true : undefined));
  }

  async feed(postId: string, ms = 15000): Promise<Post> {
    return (await this.first('feed', `a feed event for post ${postId}`, ms, (e) => e.data.id === postId)).data;
  }

  async deleted(postId: string, ms = 15000): Promise<string> {
    return (await this.first('delete', `a delete event for post ${postId}`, ms, (e) => e.data.id === postId)).id;
  }

  async notification(type: NotificationType, ms = 15000): Promise<Notification> {
    return (await this.first('notification', `a ${type} notification event`, ms, (e) => e.data.type === type)).data;
  }

  lastId(): string {
    const last = this.events[this.events.length - 1];
    assert.ok(last, 'no event received yet');
    return idOf(last);
  }

  close(): void {
    this.es.close();
  }
}

// Event ids are "<ms>-<seq>", ordered numerically part by part.
function compareEventIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

function assertOrderedUnique(events: StreamEvent[], what: string): void {
  for (let i = 1; i < events.length; i++) {
    assert.ok(compareEventIds(idOf(events[i - 1]), idOf(events[i])) < 0,
      `${what}: event ${idOf(events[i])} (${events[i].event}) does not come after ${idOf(events[i - 1])}: ` +
      `a duplicate or out of order`);
  }
}

// ---- the scenario --------------------------------------------------------------------------

describe('a TypeScript client generated from openapi.yaml', () => {
  const relay = new Relay(base);
  const streams: Stream[] = [];
  let ana: Account, bob: Account;
  let anaStream: Stream, bobStream: Stream;
  let hello: Post, reply: Post, mention: Post, late: Post;

  after(async () => {
    for (const s of streams) s.close();
    await relay.stop();
  });

  test('registers two users', async () => {
    ana = await register('ana', 'Ana Example');
    bob = await register('bob', 'Bob ✨');
    const { data, error } = await anonymous.POST('/v1/users', { body: { handle: ana.user.handle.toUpperCase() } });
    assert.equal(data, undefined);
    expectProblem(error, 409, 'a taken handle');
  });

  test('each reads and edits their own profile with GET and PATCH /v1/me', async () => {
    const me = await ana.api.GET('/v1/me');
    assert.equal(me.data?.id, ana.user.id);
    assert.equal(me.data?.bio, '');
    const { data, error, response } = await ana.api.PATCH('/v1/me', { body: { bio: 'Writes about tides 🌊' } });
    assert.equal(response.status, 200, JSON.stringify(error));
    assert.equal(data?.bio, 'Writes about tides 🌊');
    assert.equal(data?.display_name, 'Ana Example', 'a field not given is kept');
    const renamed = await bob.api.PATCH('/v1/me', { body: { display_name: 'Bob the Builder' } });
    assert.equal(renamed.data?.display_name, 'Bob the Builder');
    const bad = await bob.api.PATCH('/v1/me', { body: { bio: 'x'.repeat(161) } });
    expectProblem(bad.error, 400, 'a bio too long');
    expectProblem((await anonymous.GET('/v1/me')).error, 401, 'no token');
    const exported = await ana.api.GET('/v1/me/export');
    assert.equal(exported.response.status, 200, JSON.stringify(exported.error));
    assert.equal(exported.data?.user.id, ana.user.id);
    assert.ok(Array.isArray(exported.data?.posts) && Array.isArray(exported.data?.likes));
    expectProblem((await anonymous.GET('/v1/me/export')).error, 401, 'no token');
  });

  test('bob finds ana by handle: autocomplete by prefix, then lookup', async () => {
    // Typing "@ana_<suffix>" a few letters at a time, as a mention box would.
    const prefix = ana.user.handle.slice(0, ana.user.handle.length - 2).toUpperCase();
    const { data, error } = await bob.api.GET('/v1/users/search', { params: { query: { q: prefix, limit: 5 } } });
    assert.ok(data, JSON.stringify(error));
    assert.deepEqual(data.items.map((u) => u.handle), [ana.user.handle]);
    assert.equal(data.items[0].bio, 'Writes about tides 🌊');
    const found = await bob.api.GET('/v1/users/lookup', { params: { query: { handle: ana.user.handle.toUpperCase() } } });
    assert.equal(found.data?.id, ana.user.id);
    const none = await bob.api.GET('/v1/users/lookup', { params: { query: { handle: `nobody_${suffix}` } } });
    expectProblem(none.error, 404, 'an unknown handle');
    const bad = await bob.api.GET('/v1/users/search', { params: { query: { q: 'not-a-prefix' } } });
    expectProblem(bad.error, 400, 'a prefix no handle can start with');
  });

  test('opens both event streams with EventSource and ?access_token=', async () => {
    await relay.start();
    anaStream = new Stream(`${BASE}/v1/stream`, ana.token);
    bobStream = new Stream(relay.url('/v1/stream'), bob.token);
    streams.push(anaStream, bobStream);
    await Promise.all([anaStream.opened(), bobStream.opened()]);
    // Without a token the stream is a 401 problem, like every other authenticated route.
    const { error, response } = await anonymous.GET('/v1/stream', { parseAs: 'text' });
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="tidings"');
    assert.ok(error);
  });

  test('bob follows ana; ana is notified live and sees the follower', async () => {
    const { response, error } = await bob.api.PUT('/v1/users/{id}/follow', { params: { path: { id: ana.user.id } } });
    assert.equal(response.status, 204, JSON.stringify(error));
    const n = await anaStream.notification('follow');
    assert.equal(n.actors[0].id, bob.user.id);
    assert.equal(n.actor_count, 1);
    const { data } = await ana.api.GET('/v1/users/{id}/followers', { params: { path: { id: ana.user.id }, query: { limit: 10 } } });
    assert.deepEqual(data?.items.map((u) => u.handle), [bob.user.handle]);
    assert.equal(data?.next_cursor, null);
    const profile = await ana.api.GET('/v1/users/{id}', { params: { path: { id: ana.user.id } } });
    assert.equal(profile.data?.followers_count, 1);
  });

  test('ana posts; the fan-out brings it to bob live and into his home timeline', async () => {
    const key = randomUUID();
    const { data, response, error } = await ana.api.POST('/v1/posts', {
      params: { header: { 'Idempotency-Key': key } },
      body: { text: 'Hello from the generated client 👋' },
    });
    assert.equal(response.status, 202, JSON.stringify(error));
    assert.ok(data);
    hello = data;
    assert.equal(response.headers.get('location'), `/v1/posts/${hello.id}`);
    assert.equal(hello.author.id, ana.user.id);
    assert.equal(hello.reply_to, null);
    assert.deepEqual(hello.mentions, []);
    // The same Idempotency-Key gives back the same post.
    const again = await ana.api.POST('/v1/posts', {
      params: { header: { 'Idempotency-Key': key } },
      body: { text: 'Hello from the generated client 👋' },
    });
    assert.equal(again.data?.id, hello.id);

    const live = await bobStream.feed(hello.id);
    assert.equal(live.text, hello.text);
    assert.equal(live.author.handle, ana.user.handle);
    const timeline = await waitFor('the post in bob\'s timeline', 15000, async () => {
      const { data: page } = await bob.api.GET('/v1/timeline', { params: { query: { limit: 20 } } });
      return page?.items.some((p) => p.id === hello.id) ? page : undefined;
    });
    assert.equal(timeline.items[0].id, hello.id, 'newest first');
  });

  test('bob likes, replies and mentions; ana gets each notification live', async () => {
    const liked = await bob.api.PUT('/v1/posts/{id}/like', { params: { path: { id: hello.id } } });
    assert.equal(liked.response.status, 204);
    const post = await bob.api.GET('/v1/posts/{id}', { params: { path: { id: hello.id } } });
    assert.equal(post.data?.like_count, 1);
    // Only the author may delete a post.
    const notYours = await bob.api.DELETE('/v1/posts/{id}', { params: { path: { id: hello.id } } });
    expectProblem(notYours.error, 403, 'deleting another user\'s post');

    const r = await bob.api.POST('/v1/posts', {
      body: { text: `@${ana.user.handle} welcome aboard`, reply_to: hello.id },
    });
    assert.equal(r.response.status, 202);
    assert.ok(r.data);
    reply = r.data;
    assert.equal(reply.reply_to, hello.id);
    assert.deepEqual(reply.mentions, [ana.user.id]);

    const m = await bob.api.POST('/v1/posts', { body: { text: `coffee later, @${ana.user.handle}?` } });
    assert.equal(m.response.status, 202);
    assert.ok(m.data);
    mention = m.data;
    assert.deepEqual(mention.mentions, [ana.user.id]);

    const like = await anaStream.notification('like');
    assert.ok(like.type !== 'follow' && like.post.id === hello.id, 'the like concerns ana\'s post');
    const rep = await anaStream.notification('reply');
    assert.ok(rep.type !== 'follow' && rep.post.id === reply.id);
    const men = await anaStream.notification('mention');
    assert.ok(men.type !== 'follow' && men.post.id === mention.id);
    assertOrderedUnique(anaStream.events, 'ana\'s stream');
  });

  test('ana reads her notifications, newest first, and marks them read', async () => {
    const list = await waitFor('four kinds of notification', 15000, async () => {
      const { data } = await ana.api.GET('/v1/notifications', { params: { query: { limit: 20 } } });
      const types = new Set(data?.items.map((n) => n.type));
      return ['follow', 'like', 'reply', 'mention'].every((t) => types.has(t as NotificationType)) ? data : undefined;
    });
    const ids = list.items.map((n) => n.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => (BigInt(b) > BigInt(a) ? 1 : -1)), 'newest first');
    for (const n of list.items) {
      assert.equal(n.read, false);
      assert.ok(n.actors.some((a) => a.id === bob.user.id));
      if (n.type === 'follow') assert.equal('post' in n, false);
      else assert.ok(n.post.id.length > 0);
    }
    const only = await ana.api.GET('/v1/notifications', { params: { query: { types: ['like', 'mention'] } } });
    assert.deepEqual(new Set(only.data?.items.map((n) => n.type)), new Set(['like', 'mention']));

    const unread = await ana.api.GET('/v1/notifications/unread_count');
    assert.equal(unread.data?.count, list.items.length);
    const marked = await ana.api.POST('/v1/notifications/read', { body: { up_to: list.items[0].id } });
    assert.equal(marked.response.status, 204, JSON.stringify(marked.error));
    const after = await ana.api.GET('/v1/notifications/unread_count');
    assert.equal(after.data?.count, 0);
    const reread = await ana.api.GET('/v1/notifications', { params: { query: { limit: 20 } } });
    assert.ok(reread.data?.items.every((n) => n.read));
  });

  test('a dropped stream reconnects by itself with Last-Event-ID and replays what it missed', async () => {
    const before = bobStream.lastId();
    const seen = bobStream.events.length;
    const opens = bobStream.opens;
    const headsBefore = relay.heads.length;
    assert.ok(relay.cut() > 0, 'the relay held bob\'s stream');
    // While bob is away, ana posts: the event is kept for his return.
    const { data } = await ana.api.POST('/v1/posts', { body: { text: 'posted while bob was offline' } });
    assert.ok(data);
    late = data;
    // EventSource waits the server's retry (3 s) and reconnects through the relay.
    await waitFor('the stream to reconnect', 15000, () => (bobStream.opens > opens ? true : undefined));
    const replayed = await bobStream.feed(late.id);
    assert.equal(replayed.text, late.text);
    const head = relay.heads.slice(headsBefore).find((h) => h.startsWith('GET /v1/stream'));
    assert.ok(head, 'the reconnect went through the relay');
    assert.match(head, new RegExp(`^last-event-id: ${before}$`, 'im'), 'EventSource sent Last-Event-ID');
    assert.ok(bobStream.events.slice(seen).every((e) => compareEventIds(idOf(e), before) > 0), 'nothing replayed twice');
    assertOrderedUnique(bobStream.events, 'bob\'s stream across the reconnect');
  });

  test('ana deletes her post: bob gets the delete live, and after a resume by Last-Event-ID', async () => {
    const mark = bobStream.lastId();
    bobStream.close();
    const { response } = await ana.api.DELETE('/v1/posts/{id}', { params: { path: { id: late.id } } });
    assert.equal(response.status, 204);
    // A new EventSource resuming from the last event bob had (Last-Event-ID header).
    const resumed = new Stream(`${BASE}/v1/stream`, bob.token, mark);
    streams.push(resumed);
    await resumed.deleted(late.id);
    assert.ok(resumed.events.every((e) => compareEventIds(idOf(e), mark) > 0), 'only events after Last-Event-ID');
    assert.equal(resumed.events.filter((e) => e.event === 'feed').length, 0, 'no feed event replayed twice');

    // And one deleted while the stream is open arrives live.
    const d = await ana.api.DELETE('/v1/posts/{id}', { params: { path: { id: hello.id } } });
    assert.equal(d.response.status, 204);
    await anaStream.deleted(hello.id);
    await resumed.deleted(hello.id);
    assertOrderedUnique(resumed.events, 'the resumed stream');

    const gone = await bob.api.GET('/v1/posts/{id}', { params: { path: { id: hello.id } } });
    assert.equal(gone.response.status, 404);
    expectProblem(gone.error, 404, 'a deleted post');
    await waitFor('the deleted posts to leave bob\'s timeline', 15000, async () => {
      const { data } = await bob.api.GET('/v1/timeline', {});
      const ids = new Set(data?.items.map((p) => p.id));
      return !ids.has(hello.id) && !ids.has(late.id) && ids.has(reply.id) ? true : undefined;
    });
  });

  test('ana adds a second device token, lists her tokens and revokes it', async () => {
    const created = await ana.api.POST('/v1/tokens', { body: { name: 'laptop', expires_in: 86400 } });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    const laptop = created.data!;
    assert.equal(laptop.name, 'laptop');
    assert.ok(laptop.token.startsWith(`tdg_${ana.user.id}_${laptop.id}_`));
    const fromLaptop = client(laptop.token);
    const me = await fromLaptop.GET('/v1/me', {});
    assert.equal(me.data?.id, ana.user.id);

    const listed = await fromLaptop.GET('/v1/tokens', {});
    assert.equal(listed.response.status, 200);
    const items = listed.data!.items;
    assert.deepEqual(items.map((t) => [t.name, t.current]), [['registration', false], ['laptop', true]]);
    assert.ok(items.every((t) => !('token' in t)), 'a listed token shows its secret');

    const revoked = await ana.api.DELETE('/v1/tokens/{id}', { params: { path: { id: laptop.id } } });
    assert.equal(revoked.response.status, 204);
    expectProblem((await fromLaptop.GET('/v1/me', {})).error, 401, 'the revoked token');
    const again = await ana.api.DELETE('/v1/tokens/{id}', { params: { path: { id: laptop.id } } });
    expectProblem(again.error, 404, 'revoking it twice');
    const bad = await ana.api.POST('/v1/tokens', { body: { name: '' } });
    expectProblem(bad.error, 400, 'an empty name');
    // A one-use stream ticket, as a browser would get one.
    const ticket = await ana.api.POST('/v1/stream/tickets', {});
    assert.equal(ticket.response.status, 201);
    assert.match(ticket.data!.ticket, /^tkt_/);
  });

  test('the server serves the spec this client was generated from', async () => {
    const { data, response } = await anonymous.GET('/openapi.yaml', { parseAs: 'text' });
    assert.equal(response.status, 200);
    assert.match(String(data), /^openapi: 3\.1\./);
    const page = await anonymous.GET('/', { parseAs: 'text' });
    assert.equal(page.response.headers.get('content-type'), 'text/html; charset=utf-8');
  });
});
