// The client's state machine against a fake vending API and a fake WebSocket that
// speaks MQTT through mqtt-packet: connect, subscribe, receive and acknowledge,
// resume from storage, no resubscribe when the session is present, reconnect
// after a close, and a refused token that fails for good.
import { test } from "node:test";
import assert from "node:assert/strict";
import mqtt from "mqtt-packet";
import { connect, parseVended, publishAllowed } from "../src/internal";
import type { WebSocketLike } from "../src/types";

const VENDED = (clientId: string, resumeToken?: string) => ({
  clientId,
  region: "us-east-1",
  endpoint: "ws://127.0.0.1:8443",
  url: "ignored",
  topic: `allowed/${clientId}`,
  grants: { subscribe: [`allowed/${clientId}`, "rooms/42"], publish: [`from/${clientId}`] },
  credentials: {
    accessKeyId: "ASIATEST",
    secretAccessKey: "secret",
    sessionToken: "token",
    expiration: new Date(Date.now() + 3600_000).toISOString(),
  },
  resumeToken,
});

/** A vending API that answers with `answers` in turn and records the request bodies. */
function fakeApi(answers: [number, unknown][]) {
  const requests: unknown[] = [];
  const answer = async (_url: unknown, init: { body: string }) => {
    requests.push(JSON.parse(init.body));
    const [status, body] = answers.length > 1 ? answers.shift()! : answers[0];
    return { ok: status === 200, status, json: async () => body };
  };
  return { fetch: answer as unknown as typeof fetch, requests };
}

/** WebSockets that record what the client sends, as mqtt-packet parses it. */
function fakeSockets() {
  const sockets: FakeSocket[] = [];
  class FakeSocket implements WebSocketLike {
    binaryType = "blob";
    readyState = 0;
    onopen: WebSocketLike["onopen"] = null;
    onmessage: WebSocketLike["onmessage"] = null;
    onclose: WebSocketLike["onclose"] = null;
    onerror: WebSocketLike["onerror"] = null;
    url: string;
    protocols: string[];
    sent: any[];
    waiters: (() => void)[];
    parser: ReturnType<typeof mqtt.parser>;
    constructor(url: string, protocols: string[]) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.waiters = [];
      this.parser = mqtt.parser({ protocolVersion: 4 });
      this.parser.on("packet", (p) => {
        this.sent.push(p);
        this.waiters.splice(0).forEach((w) => w());
      });
      sockets.push(this);
      queueMicrotask(() => {
        this.readyState = 1;
        this.onopen?.({});
      });
    }
    send(bytes: Uint8Array) {
      this.parser.parse(Buffer.from(bytes));
    }
    close(code = 1000, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      queueMicrotask(() => this.onclose?.({ code, reason }));
    }
    /** The server's side: a packet to the client. */
    deliver(packet: any) {
      const bytes = mqtt.generate(packet);
      this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) });
    }
    /** Waits until the client has sent a packet of `cmd`. */
    async sentPacket(cmd: string): Promise<any> {
      for (;;) {
        const found = this.sent.find((p) => p.cmd === cmd);
        if (found) return found;
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    }
  }
  const next = async (n: number) => {
    while (sockets.length < n) await new Promise<void>((resolve) => setImmediate(resolve));
    return sockets[n - 1];
  };
  return { FakeSocket, sockets, next };
}

const RESUME_KEY = "serverless-websockets:resume:v2:http://api/credentials";
/** The resume tokens a storage remembers, by client ID. */
const remembered = (storage) => JSON.parse(storage.getItem(RESUME_KEY) ?? "[]");
const rememberToken = (storage, clientId, resumeToken) => storage.setItem(RESUME_KEY, JSON.stringify([{ clientId, resumeToken }]));

function memoryStorage() {
  const map = new Map<string, string>();
  return {
    getItem: (k: string) => map.get(k) ?? null,
    setItem: (k: string, v: string) => void map.set(k, v),
    removeItem: (k: string) => void map.delete(k),
    map,
  };
}

const states = (client) => {
  const seen = [];
  client.on("state", (s) => seen.push(s));
  return seen;
};

test("connects, subscribes at QoS 1 on a persistent session, receives and acknowledges", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const storage = memoryStorage();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage, random: () => 0 });
  const seen = states(client);
  const messages = [];
  client.on("message", (m) => messages.push(m));
  const socket = await ws.next(1);
  assert.deepEqual(socket.protocols, ["mqtt"]);
  assert.match(socket.url, /^ws:\/\/127\.0\.0\.1:8443\/mqtt\?X-Amz-Algorithm=AWS4-HMAC-SHA256&/);
  assert.match(socket.url, /&X-Amz-Security-Token=token$/);
  const connectPacket = await socket.sentPacket("connect");
  assert.equal(connectPacket.clientId, "abc");
  assert.equal(connectPacket.clean, false, "a persistent session");
  socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  const subscribe = await socket.sentPacket("subscribe");
  assert.deepEqual(subscribe.subscriptions.map((s) => [s.topic, s.qos]), [["allowed/abc", 1]]);
  assert.equal(client.state, "connected");
  assert.equal(client.clientId, "abc");
  socket.deliver({ cmd: "publish", topic: "allowed/abc", payload: Buffer.from("héllo"), qos: 1, messageId: 7 });
  assert.equal(messages[0].text, "héllo");
  assert.equal((await socket.sentPacket("puback")).messageId, 7);
  const [entry] = remembered(storage);
  assert.equal(typeof entry.connectAt, "number", "when it sent CONNECT, for the spacing across reloads");
  assert.deepEqual({ ...entry, connectAt: undefined }, { clientId: "abc", resumeToken: "tok-1", connectAt: undefined });
  assert.deepEqual(api.requests, [{}]);
  assert.deepEqual(seen, ["connected"]);
  client.close();
  assert.equal(client.state, "closed");
  assert.ok(socket.sent.some((p) => p.cmd === "disconnect"));
});

test("a stored resume token is sent, and after a reload a present session is subscribed again", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-2")]]);
  const ws = fakeSockets();
  const storage = memoryStorage();
  rememberToken(storage, "abc", "tok-1");
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage, random: () => 0 });
  const socket = await ws.next(1);
  await socket.sentPacket("connect");
  socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: true });
  assert.equal(client.state, "connected");
  assert.deepEqual(api.requests, [{ resumeToken: "tok-1" }]);
  // The page before the reload may have lost its connection before the SUBACK:
  // the session IoT kept may hold no subscriptions.
  const subscribe = await socket.sentPacket("subscribe");
  assert.deepEqual(subscribe.subscriptions.map((s) => [s.topic, s.qos]), [["allowed/abc", 1]]);
  client.close();
});

test("a present session is subscribed again until a SUBACK says it holds the subscriptions", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage(), random: () => 0 });
  const subscribes = (socket: { sent: { cmd: string }[] }) => socket.sent.filter((p) => p.cmd === "subscribe").length;
  // Accepted, then lost before the SUBACK: IoT keeps a session without subscriptions.
  const first = await ws.next(1);
  await first.sentPacket("connect");
  first.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  const unanswered = await first.sentPacket("subscribe");
  first.close(1006, "");
  const second = await ws.next(2);
  await second.sentPacket("connect");
  second.deliver({ cmd: "connack", returnCode: 0, sessionPresent: true });
  const subscribe = await second.sentPacket("subscribe");
  assert.deepEqual(subscribe.subscriptions, unanswered.subscriptions);
  second.deliver({ cmd: "suback", messageId: subscribe.messageId, granted: [1] });
  second.close(1006, "");
  // Now the session holds them: a session-present reconnect sends nothing again.
  const third = await ws.next(3);
  await third.sentPacket("connect");
  third.deliver({ cmd: "connack", returnCode: 0, sessionPresent: true });
  assert.equal(client.state, "connected");
  assert.equal(subscribes(third), 0);
  client.close();
});

test("a lost connection reconnects with a freshly signed URL and the same client ID", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage(), random: () => 0 });
  const seen = states(client);
  const first = await ws.next(1);
  await first.sentPacket("connect");
  first.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  first.close(1006, "");
  const second = await ws.next(2);
  assert.equal((await second.sentPacket("connect")).clientId, "abc");
  second.deliver({ cmd: "connack", returnCode: 0, sessionPresent: true });
  assert.deepEqual(seen, ["connected", "reconnecting", "connected"]);
  assert.equal(api.requests.length, 1, "no API call for a reconnect within the credentials' life");
  client.close();
});

test("a CONNECT closed without CONNACK asks the API again, which says the user is banned", async () => {
  const api = fakeApi([
    [200, VENDED("abc", "tok-1")],
    [403, { error: { code: "Banned", message: "You are banned from this service." } }],
  ]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage(), random: () => 0 });
  const seen = states(client);
  const first = await ws.next(1);
  await first.sentPacket("connect");
  first.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  first.close(1000, "");
  const failed = new Promise<void>((resolve) => client.on("state", (s) => s === "failed" && resolve()));
  const second = await ws.next(2);
  await second.sentPacket("connect");
  second.close(1000, "");
  await failed;
  assert.deepEqual(api.requests, [{}, { resumeToken: "tok-1" }], "the second connect's refusal made it ask again");
  assert.deepEqual(seen, ["connected", "reconnecting", "failed"]);
  assert.equal(ws.sockets.length, 2);
  client.close();
});

test("a refused resume falls back to a new client ID and says so", async () => {
  const api = fakeApi([
    [401, { error: { code: "ResumeTokenExpired", message: "expired" } }],
    [200, VENDED("new", "tok-9")],
  ]);
  const ws = fakeSockets();
  const storage = memoryStorage();
  rememberToken(storage, "old", "old-token");
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage, random: () => 0 });
  const errors = [];
  client.on("error", (e) => errors.push(e.code));
  const socket = await ws.next(1);
  assert.equal((await socket.sentPacket("connect")).clientId, "new");
  assert.deepEqual(api.requests, [{ resumeToken: "old-token" }, {}]);
  assert.deepEqual(errors, ["ResumeRefused"]);
  client.close();
});

test("a refused bearer token fails for good with Unauthorized", async () => {
  const api = fakeApi([[401, { error: { code: "TokenExpired", message: "expired" } }]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", token: async () => "jwt", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage() });
  const failed = new Promise<void>((resolve) => client.on("state", (s) => s === "failed" && resolve()));
  const errors = [];
  client.on("error", (e) => errors.push(e));
  await failed;
  assert.equal(errors[0].code, "Unauthorized");
  assert.equal(errors[0].status, 401);
  assert.equal(ws.sockets.length, 0);
});

test("a banned user is told so once and the client stops asking", async () => {
  const api = fakeApi([[403, { error: { code: "Banned", message: "You are banned from this service." } }]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", token: async () => "jwt", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage() });
  const failed = new Promise<void>((resolve) => client.on("state", (s) => s === "failed" && resolve()));
  const errors = [];
  client.on("error", (e) => errors.push(e));
  await failed;
  assert.deepEqual(errors.map((e) => [e.code, e.status]), [["Banned", 403]]);
  assert.equal(api.requests.length, 1);
  assert.equal(ws.sockets.length, 0);
});

test("publish resolves on the gateway's PUBACK", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage() });
  const socket = await ws.next(1);
  await socket.sentPacket("connect");
  socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: true });
  const done = client.publish("from/abc", "hi");
  const publish = await socket.sentPacket("publish");
  assert.equal(publish.qos, 1);
  assert.equal(publish.payload.toString(), "hi");
  socket.deliver({ cmd: "puback", messageId: publish.messageId });
  await done;
  client.close();
});

test("refresh() resumes: fresh credentials, the same client ID, used at the next connect", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")], [200, { ...VENDED("abc", "tok-2"), credentials: { ...VENDED("abc").credentials, accessKeyId: "ASIANEW" } }]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage(), random: () => 0 });
  const first = await ws.next(1);
  await first.sentPacket("connect");
  first.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  await client.refresh();
  assert.deepEqual(api.requests, [{}, { resumeToken: "tok-1" }]);
  assert.equal(client.clientId, "abc");
  first.close(1006, "");
  const second = await ws.next(2);
  assert.match(second.url, /X-Amz-Credential=ASIANEW%2F/);
  client.close();
});

test("credentials are resumed at the refresh fraction of their lifetime, by the injected clock", async () => {
  // The clock says the credentials are already past 80 % of their life.
  const vended = VENDED("abc", "tok-1");
  const issued = Date.parse(vended.credentials.expiration) - 3600_000;
  let now = issued;
  const api = fakeApi([[200, vended], [200, VENDED("abc", "tok-2")]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage(), now: () => now, random: () => 0 });
  const socket = await ws.next(1);
  await socket.sentPacket("connect");
  now = issued + 0.81 * 3600_000;
  socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  while (api.requests.length < 2) await new Promise<void>((resolve) => setImmediate(resolve));
  assert.deepEqual(api.requests[1], { resumeToken: "tok-1" });
  assert.equal(client.clientId, "abc");
  client.close();
});

test("while the browser is offline it waits for the online event instead of burning retries", async () => {
  const listeners: Record<string, () => void> = {};
  globalThis.addEventListener = (type, f) => (listeners[type] = f);
  globalThis.removeEventListener = (type) => delete listeners[type];
  const previous = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", { value: { onLine: false }, configurable: true, writable: true });
  try {
    const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
    const ws = fakeSockets();
    const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage() });
    while (client.state !== "reconnecting") await new Promise<void>((resolve) => setImmediate(resolve));
    for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(api.requests.length, 0, "no API call while offline");
    assert.equal(ws.sockets.length, 0, "no connect attempt while offline");
    (globalThis.navigator as { onLine: boolean }).onLine = true;
    listeners.online();
    const socket = await ws.next(1);
    assert.equal((await socket.sentPacket("connect")).clientId, "abc");
    client.close();
  } finally {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
    if (previous) Object.defineProperty(globalThis, "navigator", previous);
    else delete globalThis.navigator;
  }
});

test("a message handler that throws loses nothing: the rest of the frame is delivered and every message acknowledged", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage(), random: () => 0 });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.on("message", () => {
    throw new Error("app bug");
  });
  const received = [];
  client.on("message", (m) => received.push(m.text));
  const socket = await ws.next(1);
  await socket.sentPacket("connect");
  socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: true });
  // Three QoS 1 PUBLISHes in one WebSocket message.
  const frame = Buffer.concat(
    [1, 2, 3].map((n) => mqtt.generate({ cmd: "publish", topic: "allowed/abc", payload: Buffer.from(`m${n}`), qos: 1, messageId: n, dup: false, retain: false })),
  );
  socket.onmessage({ data: frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length) });
  assert.deepEqual(received, ["m1", "m2", "m3"]);
  const acked = socket.sent.filter((p) => p.cmd === "puback").map((p) => p.messageId);
  assert.deepEqual(acked, [1, 2, 3]);
  assert.equal(errors.length, 3);
  assert.ok(errors.every((e) => e.code === "Handler" && /app bug/.test(e.message)));
  client.close();
});

test("a second CONNACK on one connection is a protocol error, not a second subscription", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage(), random: () => 0 });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const socket = await ws.next(1);
  await socket.sentPacket("connect");
  socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  await socket.sentPacket("subscribe");
  for (let i = 0; i < 5; i++) socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  assert.equal(socket.sent.filter((p) => p.cmd === "subscribe").length, 1);
  assert.equal(socket.readyState, 3, "the connection is closed");
  assert.ok(errors.some((e) => e.code === "Protocol" && /second CONNACK/.test(e.message)));
  assert.equal(api.requests.length, 1, "no extra call to the vending API");
  client.close();
});

/** An unsigned JWT-shaped token for `sub`, expiring `seconds` from now (the client only reads it). */
function jwt(sub, seconds) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "HS256" })}.${part({ sub, exp: Math.floor(Date.now() / 1000) + seconds })}.sig`;
}

test("token mode names the authorizer, carries the token and binds the client ID to the token's subject", async () => {
  const ws = fakeSockets();
  const storage = memoryStorage();
  const token = jwt("alice", 3600);
  const client = connect({
    url: "wss://example-ats.iot.us-east-1.amazonaws.com",
    authorizer: "sw-jwt",
    token: () => token,
    signature: () => "ab+c/d==",
    topics: ["allowed/{clientId}", "users/alice"],
    WebSocket: ws.FakeSocket,
    storage,
    fetch: () => assert.fail("token mode calls no vending API"),
  });
  const socket = await ws.next(1);
  const url = new URL(socket.url);
  assert.equal(url.origin + url.pathname, "wss://example-ats.iot.us-east-1.amazonaws.com/mqtt");
  assert.equal(url.searchParams.get("x-amz-customauthorizer-name"), "sw-jwt");
  assert.equal(url.searchParams.get("token"), token);
  assert.equal(url.searchParams.get("x-amz-customauthorizer-signature"), "ab+c/d==", "URL-encoded, so + survives");
  const connectPacket = await socket.sentPacket("connect");
  // The prefix the Rust authorizer computes for "alice" (core's client_id_prefix).
  assert.match(connectPacket.clientId, /^u2bd806c97f0e00af1a1fc3328fa763a9-[0-9a-f]{16}$/);
  socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  const subscribe = await socket.sentPacket("subscribe");
  assert.deepEqual(subscribe.subscriptions.map((s) => s.topic), [`allowed/${connectPacket.clientId}`, "users/alice"]);
  assert.equal(client.clientId, connectPacket.clientId);
  client.close();
  // The same tab (storage) keeps its client ID; another tab gets its own.
  const again = connect({ url: "wss://e", authorizer: "sw-jwt", token, WebSocket: ws.FakeSocket, storage });
  const other = connect({ url: "wss://e", authorizer: "sw-jwt", token, WebSocket: ws.FakeSocket, storage: memoryStorage() });
  const [a, b] = [await (await ws.next(2)).sentPacket("connect"), await (await ws.next(3)).sentPacket("connect")];
  assert.notEqual(a.clientId, b.clientId);
  again.close();
  other.close();
  const third = connect({ url: "wss://e", authorizer: "sw-jwt", token, WebSocket: ws.FakeSocket, storage });
  assert.equal((await (await ws.next(4)).sentPacket("connect")).clientId, a.clientId);
  third.close();
});

test("token mode: a close before CONNACK is reported as the authorizer's refusal and retried with a fresh token", async () => {
  const ws = fakeSockets();
  let issued = 0;
  const client = connect({
    url: "ws://127.0.0.1:1",
    authorizer: "a",
    token: () => jwt("user", 3600 + issued++),
    WebSocket: ws.FakeSocket,
    storage: memoryStorage(),
    random: () => 0,
  });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const first = await ws.next(1);
  await first.sentPacket("connect");
  first.close(1000, "");
  const second = await ws.next(2);
  await second.sentPacket("connect");
  assert.equal(errors[0].code, "Unauthorized");
  assert.match(errors[0].message, /before CONNACK/);
  assert.notEqual(new URL(first.url).searchParams.get("token"), new URL(second.url).searchParams.get("token"));
  assert.equal(client.state, "reconnecting");
  second.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  assert.equal(client.state, "connected");
  client.close();
});

test("token mode: before the token expires a new connection with a fresh token takes over, same client ID", async () => {
  const ws = fakeSockets();
  let issued = 0;
  // 2 s tokens, refreshed at half their life: the new connection comes within a second.
  const client = connect({
    url: "ws://127.0.0.1:1",
    authorizer: "a",
    token: () => (issued++, jwt("user", 2)),
    refreshFraction: 0.5,
    WebSocket: ws.FakeSocket,
    storage: memoryStorage(),
  });
  const first = await ws.next(1);
  const id = (await first.sentPacket("connect")).clientId;
  first.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  const second = await ws.next(2);
  assert.equal((await second.sentPacket("connect")).clientId, id);
  assert.equal(first.readyState, 1, "the old connection stays until the new one is accepted");
  second.deliver({ cmd: "connack", returnCode: 0, sessionPresent: true });
  assert.equal(first.readyState, 3, "then it is closed");
  assert.equal(client.state, "connected");
  assert.equal(issued, 2);
  client.close();
});

test("a client needs either a vending URL or a token-mode URL and authorizer", () => {
  assert.throws(() => connect({}), /either credentialsUrl/);
  assert.throws(() => connect({ credentialsUrl: "x", url: "wss://e", authorizer: "a" }), /either credentialsUrl/);
});

test("claims narrow the grants: sent with every request, resume included", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const client = connect({
    credentialsUrl: "http://api/credentials",
    claims: { rooms: ["42"] },
    fetch: api.fetch,
    WebSocket: ws.FakeSocket,
    storage: memoryStorage(),
  });
  const socket = await ws.next(1);
  await socket.sentPacket("connect");
  socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: false });
  await client.refresh();
  assert.deepEqual(api.requests, [{ claims: { rooms: ["42"] } }, { resumeToken: "tok-1", claims: { rooms: ["42"] } }]);
  client.close();
});

/** The Web Locks API in memory: `ifAvailable` requests, released when their callback's promise settles. */
function fakeLocks() {
  const held = new Set();
  return {
    held,
    async request(name, options, callback) {
      if (held.has(name)) return callback(null);
      held.add(name);
      try {
        return await callback({ name });
      } finally {
        held.delete(name);
      }
    },
  };
}

test("two clients sharing one stored resume token each get their own client ID, and neither is taken over", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-2")], [200, VENDED("def", "tok-3")]]);
  const ws = fakeSockets();
  const storage = memoryStorage();
  rememberToken(storage, "abc", "tok-1");
  const locks = fakeLocks();
  const options = { credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage, locks, random: () => 0 };
  const first = connect(options);
  const one = await ws.next(1);
  assert.equal((await one.sentPacket("connect")).clientId, "abc");
  const second = connect(options);
  const two = await ws.next(2);
  assert.equal((await two.sentPacket("connect")).clientId, "def");
  assert.deepEqual(api.requests, [{ resumeToken: "tok-1" }, {}], "the held ID is not resumed twice");
  assert.deepEqual(remembered(storage).map((e) => e.clientId), ["abc", "def"]);
  first.close();
  second.close();
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(locks.held.size, 0, "close() lets the IDs go");
  // A reload: both IDs are resumed again, one each.
  const again = fakeApi([[200, VENDED("abc", "tok-4")], [200, VENDED("def", "tok-5")]]);
  const third = connect({ ...options, fetch: again.fetch });
  await (await ws.next(3)).sentPacket("connect");
  const fourth = connect({ ...options, fetch: again.fetch });
  await (await ws.next(4)).sentPacket("connect");
  assert.deepEqual(again.requests, [{ resumeToken: "tok-2" }, { resumeToken: "tok-3" }]);
  third.close();
  fourth.close();
});

test("connections taken over soon after they are accepted end in TakenOver, not a loop", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage(), random: () => 0, maxShortLived: 3 });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const failed = new Promise<void>((resolve) => client.on("state", (s) => s === "failed" && resolve()));
  for (let n = 1; n <= 3; n++) {
    const socket = await ws.next(n);
    await socket.sentPacket("connect");
    socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: true });
    socket.close(1000, "");
  }
  await failed;
  assert.equal(ws.sockets.length, 3);
  assert.equal(errors.at(-1).code, "TakenOver");
  assert.match(errors.at(-1).message, /client ID abc/);
});

test("a topic the credentials do not grant fails as Forbidden naming it, before any connection", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage(), topics: ["rooms/42", "rooms/7"] });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  await new Promise<void>((resolve) => client.on("state", (s) => s === "failed" && resolve()));
  assert.equal(errors[0].code, "Forbidden");
  assert.match(errors[0].message, /"rooms\/7".*allowed\/abc, rooms\/42/);
  assert.equal(ws.sockets.length, 0);
  assert.deepEqual(client.grants, { subscribe: ["allowed/abc", "rooms/42"], publish: ["from/abc"] });
  assert.equal(client.topic, "allowed/abc");
});

test("a publish the credentials do not grant is refused by name and the connection stays", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-1")]]);
  const ws = fakeSockets();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage: memoryStorage() });
  const socket = await ws.next(1);
  await socket.sentPacket("connect");
  socket.deliver({ cmd: "connack", returnCode: 0, sessionPresent: true });
  await assert.rejects(client.publish("from/someone-else", "x"), (e: any) => e.code === "Forbidden" && /"from\/someone-else"/.test(e.message));
  assert.equal(client.state, "connected");
  assert.ok(!socket.sent.some((p) => p.cmd === "publish"));
  client.close();
});

test("a vend answer of the wrong shape is an Api error naming the field", () => {
  const good = VENDED("abc", "t");
  assert.equal(parseVended(good).clientId, "abc");
  for (const [bad, field] of <[unknown, string][]>[
    [{ ...good, clientId: 7 }, "clientId"],
    [{ ...good, credentials: { ...good.credentials, sessionToken: undefined } }, "credentials.sessionToken"],
    [{ ...good, credentials: { ...good.credentials, expiration: "soon" } }, "credentials.expiration"],
    [{ ...good, grants: { subscribe: "allowed/abc" } }, "grants.subscribe"],
    ["<html>", "body"],
  ]) {
    assert.throws(() => parseVended(bad), (e: any) => e.code === "Api" && e.message.includes(field), field);
  }
});

test("publish grants match as IoT's policy does: a wildcard level matches anything", () => {
  assert.ok(publishAllowed("from/abc", "from/abc"));
  assert.ok(!publishAllowed("from/abc", "from/abcd"));
  assert.ok(publishAllowed("rooms/42/+", "rooms/42/abc"));
  assert.ok(publishAllowed("broadcast/#", "broadcast/a/b"));
  assert.ok(!publishAllowed("rooms/42/+", "rooms/7/abc"));
  assert.ok(!publishAllowed("a.b", "axb"), "a dot is a dot");
});

test("a reload does not CONNECT again within IoT's second per client ID: it waits out the spacing", async () => {
  const api = fakeApi([[200, VENDED("abc", "tok-2")]]);
  const ws = fakeSockets();
  const storage = memoryStorage();
  // The page before the reload connected as abc 300 ms ago.
  const before = Date.now() - 300;
  storage.setItem(RESUME_KEY, JSON.stringify([{ clientId: "abc", resumeToken: "tok-1", connectAt: before }]));
  const started = Date.now();
  const client = connect({ credentialsUrl: "http://api/credentials", fetch: api.fetch, WebSocket: ws.FakeSocket, storage, random: () => 0 });
  const socket = await ws.next(1);
  const waited = Date.now() - started;
  assert.ok(waited >= 1100 - 300 - 20, `opened ${waited} ms after connect(), ${waited + 300} ms after the last CONNECT`);
  await socket.sentPacket("connect");
  assert.ok(remembered(storage)[0].connectAt >= before + 1100 - 20, "the new CONNECT's time is remembered");
  client.close();
});
