// The browser client: credentials from the vending API, a presigned URL made in
// the browser for every connect, MQTT 3.1.1 over one WebSocket, a persistent
// session with QoS 1 subscriptions, resume before the credentials expire, and
// reconnects with exponential backoff and full jitter.
//
// Token mode (`url` + `authorizer` instead of `credentialsUrl`): no vending API,
// no AWS keys in the page. Each connect names an IoT custom authorizer and
// carries the app's token (docs/vend-or-authorize.md); the same state machine,
// reconnects and one client ID per tab, and a fresh token on a new connection
// before the old one's token expires.

import { BANNED, RESUME_REFUSALS } from "./codes";
import { Decoder, DISCONNECT, PINGREQ, encodeConnect, encodePuback, encodePublish, encodeSubscribe } from "./mqtt";
import type { Packet } from "./mqtt";
import { presign } from "./sigv4";
import { Identities, defaultLocks } from "./identity";
import type { Held } from "./identity";
import { ClientError } from "./types";
import type { ConnectOptions, Events, Message, State, WebSocketLike } from "./types";
import { checkPublish, checkSubscribe, parseVended } from "./vended";
import type { Grants, Vended } from "./vended";

export { ClientError };
export type { ConnectOptions, Message, State, WebSocketLike };

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();
/** The least time between two CONNECTs with one client ID: IoT allows one per second. */
export const CONNECT_SPACING_MS = 1100;

export class Client {
  private currentState: State = "connecting";
  private currentClientId: string | undefined;

  private readonly options: Required<
    Pick<
      ConnectOptions,
      "keepAliveSeconds" | "refreshFraction" | "backoffMinMs" | "backoffMaxMs" | "maxShortLived" | "stableAfterMs"
    >
  > &
    ConnectOptions;
  private readonly handlers: { [K in keyof Events]: Events[K][] } = { state: [], message: [], error: [] };
  private vended: Vended | undefined;
  private fetchedAt = 0;
  private socket: WebSocketLike | undefined;
  private decoder = new Decoder();
  private nextPacketId = 0;
  private readonly pendingPublishes = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private attempt = 0;
  /** This client's last CONNECT: its client ID and when. */
  private lastConnect?: { clientId: string; at: number };
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private pinger: ReturnType<typeof setInterval> | undefined;
  private closing = false;
  private readonly identities: Identities;
  /** The client ID this client holds (its Web Lock), and its resume token. */
  private held: Held | undefined;
  /** Connections in a row the gateway closed soon after accepting them. */
  private shortLived = 0;
  /** Token mode: when the current token expires (ms), if it says. */
  private tokenExpires: number | undefined;
  /**
   * The client ID whose session on the gateway is known to hold the topics'
   * subscriptions: a SUBACK came for them, and no CONNACK since said the session
   * was gone. "Session present" alone is not enough: the session may come from a
   * CONNECT whose connection closed before the SUBACK, or from before a reload.
   */
  private subscribedAs: string | undefined;

  constructor(options: ConnectOptions) {
    this.options = {
      keepAliveSeconds: 60,
      refreshFraction: 0.8,
      backoffMinMs: 500,
      backoffMaxMs: 30_000,
      maxShortLived: 5,
      stableAfterMs: 10_000,
      ...options,
    };
    const tokenMode = options.url !== undefined && options.authorizer !== undefined;
    if (tokenMode === (options.credentialsUrl !== undefined)) {
      throw new ClientError("Misconfigured", "pass either credentialsUrl (vending) or url and authorizer (token mode)");
    }
    const key = tokenMode
      ? `serverless-websockets:client-ids:${options.url}:${options.authorizer}`
      : `serverless-websockets:resume:v2:${options.credentialsUrl}`;
    const storage =
      options.storage !== undefined ? options.storage : typeof sessionStorage === "undefined" ? null : sessionStorage;
    this.identities = new Identities(storage, key, options.locks !== undefined ? options.locks : defaultLocks());
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("online", this.onOnline);
    }
    queueMicrotask(() => void this.run());
  }

  /** `connecting`, `connected`, `reconnecting`, `closed` (by `close()`) or `failed` (see the `error` event). */
  get state(): State {
    return this.currentState;
  }

  /** The MQTT client ID, once known. */
  get clientId(): string | undefined {
    return this.currentClientId;
  }

  /** Vending mode: what the current credentials allow, as the API said. */
  get grants(): Grants | undefined {
    return this.vended?.grants;
  }

  /** Vending mode: the client's own topic. */
  get topic(): string | undefined {
    return this.vended?.topic;
  }

  on<K extends keyof Events>(event: K, handler: Events[K]): this {
    this.handlers[event].push(handler);
    return this;
  }

  /** Publishes `data` at QoS 1; resolves when the gateway acknowledges it. */
  publish(topic: string, data: string | Uint8Array): Promise<void> {
    const socket = this.socket;
    if (this.state !== "connected" || !socket) {
      return Promise.reject(new ClientError("Network", "not connected"));
    }
    if (this.vended?.grants) {
      try {
        checkPublish(this.vended.grants, topic);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const payload = typeof data === "string" ? textEncoder.encode(data) : data;
    const id = this.packetId();
    return new Promise((resolve, reject) => {
      this.pendingPublishes.set(id, { resolve, reject });
      socket.send(encodePublish(topic, payload, 1, id));
    });
  }

  /**
   * Fetches fresh credentials now (resuming: the same client ID) for the next
   * connect; the live connection is not interrupted. The client also does this on
   * its own at `refreshFraction` of the credentials' lifetime.
   */
  async refresh(): Promise<void> {
    if (this.options.url !== undefined) {
      // Token mode: a new connection with a fresh token replaces this one.
      await this.run();
      return;
    }
    this.use(await this.fetchCredentials());
  }

  /** Disconnects for good (the persistent session stays with IoT until it expires). */
  close(): void {
    this.closing = true;
    this.clearTimers();
    if (typeof globalThis.removeEventListener === "function") {
      globalThis.removeEventListener("online", this.onOnline);
    }
    if (this.socket && this.socket.readyState === 1) this.socket.send(DISCONNECT);
    this.socket?.close(1000, "closed by the client");
    this.socket = undefined;
    this.held?.release();
    this.held = undefined;
    this.setState("closed");
  }

  /**
   * Calls every handler of `event`. A handler that throws does not stop the
   * others, nor the packets after it: its error is reported on `error` (an
   * `error` handler that throws goes to the console instead).
   */
  private emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    for (const handler of this.handlers[event]) {
      try {
        (handler as (...a: Parameters<Events[K]>) => void)(...args);
      } catch (err) {
        if (event === "error") console.error("serverless-websockets: an error handler threw", err);
        else this.emit("error", new ClientError("Handler", `a ${String(event)} handler threw: ${String(err)}`));
      }
    }
  }

  /** Stops for good after an error the app must act on: no timers left, the client ID let go. */
  private fail(): void {
    this.clearTimers();
    this.held?.release();
    this.held = undefined;
    this.setState("failed");
  }

  private setState(state: State): void {
    if (this.currentState !== state) {
      this.currentState = state;
      this.emit("state", state);
    }
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private packetId(): number {
    this.nextPacketId = (this.nextPacketId % 0xffff) + 1;
    return this.nextPacketId;
  }

  private later(ms: number, f: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      f();
    }, ms);
    this.timers.add(timer);
  }

  private clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.pinger !== undefined) clearInterval(this.pinger);
    this.pinger = undefined;
  }

  private readonly onOnline = (): void => {
    if (this.state === "reconnecting" && !this.socket) {
      this.clearTimers();
      void this.run();
    }
  };

  /** Credentials are due for a refresh (or there are none). */
  private refreshDue(): boolean {
    if (!this.vended) return true;
    const expires = Date.parse(this.vended.credentials.expiration);
    if (Number.isNaN(expires)) return this.now() - this.fetchedAt > 300_000;
    return this.now() >= this.fetchedAt + (expires - this.fetchedAt) * this.options.refreshFraction;
  }

  private async token(): Promise<string | undefined> {
    const token = this.options.token;
    return typeof token === "function" ? await token() : token;
  }

  /**
   * POSTs to the API, resuming the client ID this client holds; the first time,
   * a remembered one no other live client in this browser holds.
   */
  private async fetchCredentials(): Promise<Vended> {
    if (!this.held) this.held = await this.identities.take((entry) => entry.resumeToken !== undefined);
    const resumeToken = this.held?.entry.resumeToken;
    let vended: Vended;
    try {
      vended = await this.post(resumeToken);
    } catch (err) {
      if (!(resumeToken && err instanceof ClientError && err.code === "ResumeRefused")) throw err;
      this.identities.forget(this.held!.entry.clientId);
      this.held!.release();
      this.held = undefined;
      this.emit("error", err);
      vended = await this.post(undefined);
    }
    await this.remember(vended);
    return vended;
  }

  /** Holds the vended client ID and remembers its resume token. */
  private async remember(vended: Vended): Promise<void> {
    const previous = this.held?.entry.clientId;
    if (this.held && previous !== vended.clientId) {
      this.held.release();
      this.held = undefined;
    }
    this.held ??= { entry: { clientId: vended.clientId }, release: await this.identities.hold(vended.clientId) };
    this.held.entry = { clientId: vended.clientId, ...(vended.resumeToken ? { resumeToken: vended.resumeToken } : {}) };
    this.identities.remember(this.held.entry, previous);
  }

  /** Takes freshly fetched credentials into use (for the next connect). */
  private use(vended: Vended): void {
    const previous = this.vended?.clientId;
    if (previous && previous !== vended.clientId) {
      this.emit("error", new ClientError("ResumeRefused", `new client ID ${vended.clientId}: messages queued for ${previous} are lost`));
    }
    this.vended = vended;
    this.fetchedAt = this.now();
    this.currentClientId = vended.clientId;
  }

  private async post(resumeToken: string | undefined): Promise<Vended> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    const token = await this.token();
    if (token) headers.authorization = `Bearer ${token}`;
    const fetchImpl = this.options.fetch ?? fetch;
    let response: Response;
    try {
      response = await fetchImpl(this.options.credentialsUrl ?? "", {
        method: "POST",
        headers,
        body: JSON.stringify({
          ...(resumeToken ? { resumeToken } : {}),
          ...(this.options.claims ? { claims: this.options.claims } : {}),
        }),
        cache: "no-store",
      });
    } catch (err) {
      throw new ClientError("Network", `could not reach the credentials API: ${String(err)}`);
    }
    const body = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
    if (!response.ok) {
      const code = body.error?.code ?? "Error";
      const message = `the credentials API answered ${response.status} ${code}: ${body.error?.message ?? ""}`;
      if (RESUME_REFUSALS.includes(code)) {
        throw new ClientError("ResumeRefused", message, response.status);
      }
      if (response.status === 401) throw new ClientError("Unauthorized", message, 401);
      if (code === BANNED) throw new ClientError("Banned", message, response.status);
      // Claims the token does not carry, or too many to hold: the app must ask differently.
      if (response.status === 403) throw new ClientError("Forbidden", message, 403);
      if (response.status === 404 || response.status === 405) throw new ClientError("Misconfigured", message, response.status);
      throw new ClientError("Api", message, response.status);
    }
    return parseVended(body);
  }

  /** One round: credentials if due, presign, connect (or, in token mode, a token and its URL). */
  private async run(): Promise<void> {
    if (this.closing) return;
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      // Wait for the `online` event without burning retries.
      this.setState("reconnecting");
      return;
    }
    this.attempt += 1;
    try {
      this.openSpaced(...(this.options.url !== undefined ? await this.tokenTarget() : await this.vendedTarget()));
    } catch (err) {
      this.attemptFailed(err);
    }
  }

  /** A connect attempt threw: said, then the end for errors the app must act on, else a retry. */
  private attemptFailed(err: unknown): void {
    const error = err instanceof ClientError ? err : new ClientError("Network", String(err));
    this.emit("error", error);
    if (["Unauthorized", "Forbidden", "Banned", "Misconfigured"].includes(error.code)) {
      this.fail();
      return;
    }
    this.retry();
  }

  /** Vending mode: credentials if due, then a URL presigned now. */
  private async vendedTarget(): Promise<[string, Session]> {
    if (this.refreshDue()) this.use(await this.fetchCredentials());
    const vended = this.vended!;
    // A topic the credentials do not grant fails here, by name, rather than as
    // a connection the gateway closes.
    if (vended.grants) checkSubscribe(vended.grants, this.options.topics ?? []);
    const url = await presign(vended.endpoint, vended.region, vended.credentials, new Date(this.now()));
    return [url, { clientId: vended.clientId, topics: [vended.topic, ...(this.options.topics ?? [])] }];
  }

  /** Token mode: a token now, the tab's client ID, the authorizer's URL. */
  private async tokenTarget(): Promise<[string, Session]> {
    const token = await this.token();
    if (!token) throw new ClientError("Misconfigured", "token mode needs a token (or a function that returns one)");
    const claims = jwtClaims(token);
    this.tokenExpires = typeof claims?.exp === "number" ? claims.exp * 1000 : undefined;
    this.fetchedAt = this.now();
    if (!this.currentClientId) this.currentClientId = await this.tabClientId(claims);
    const key = this.options.tokenKeyName ?? "token";
    let url = `${this.options.url!.replace(/\/+$/, "").replace(/\/mqtt$/, "")}/mqtt?x-amz-customauthorizer-name=${encodeURIComponent(this.options.authorizer!)}&${encodeURIComponent(key)}=${encodeURIComponent(token)}`;
    if (this.options.signature) {
      url += `&x-amz-customauthorizer-signature=${encodeURIComponent(await this.options.signature(token))}`;
    }
    const clientId = this.currentClientId;
    const topics = (this.options.topics ?? []).map((topic) => topic.split("{clientId}").join(clientId));
    return [url, { clientId, topics }];
  }

  /**
   * Token mode: a remembered client ID of this user that no other live client
   * holds (kept in `storage` across reloads), or a new one.
   */
  private async tabClientId(claims: Record<string, unknown> | undefined): Promise<string> {
    const prefix = this.options.clientIdPrefix ?? (typeof claims?.sub === "string" ? await clientIdPrefix(claims.sub) : "");
    this.held ??= await this.identities.take((entry) => entry.clientId.startsWith(prefix));
    if (!this.held) {
      const suffix = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
      const clientId = prefix + suffix;
      this.held = { entry: { clientId }, release: await this.identities.hold(clientId) };
      this.identities.remember(this.held.entry);
    }
    return this.held.entry.clientId;
  }

  /**
   * Opens the connection, but never sooner than `CONNECT_SPACING_MS` after this
   * client ID's last CONNECT (remembered across reloads): IoT allows one CONNECT
   * per second per client ID and refuses the next.
   */
  private openSpaced(url: string, session: Session): void {
    const mine = this.lastConnect?.clientId === session.clientId ? this.lastConnect.at : 0;
    const last = Math.max(mine, this.identities.connectAt(session.clientId) ?? 0);
    const wait = last + CONNECT_SPACING_MS - this.now();
    if (wait <= 0 || last > this.now()) {
      this.open(url, session);
      return;
    }
    this.later(wait, () => {
      if (this.closing) return;
      try {
        this.open(url, session);
      } catch (err) {
        this.attemptFailed(err);
      }
    });
  }

  private retry(): void {
    if (this.closing) return;
    this.setState("reconnecting");
    const cap = Math.min(this.options.backoffMaxMs, this.options.backoffMinMs * 2 ** Math.min(this.attempt - 1, 16));
    const delay = Math.floor((this.options.random ?? Math.random)() * cap);
    this.later(delay, () => void this.run());
  }

  private open(url: string, session: Session): void {
    const WebSocketImpl = this.options.WebSocket ?? (globalThis.WebSocket as unknown as ConnectOptions["WebSocket"]);
    if (!WebSocketImpl) throw new ClientError("Misconfigured", "no WebSocket in this environment");
    const socket = new WebSocketImpl(url, ["mqtt"]);
    socket.binaryType = "arraybuffer";
    // A refresh opens the new connection before the old one goes (the gateway
    // hands the session over); the old one is closed once the new is accepted.
    const previous = this.socket;
    this.socket = socket;
    this.decoder = new Decoder();
    let opened = false;
    let connacked = false;
    let acceptedAt = 0;
    socket.onopen = () => {
      opened = true;
      this.lastConnect = { clientId: session.clientId, at: this.now() };
      this.identities.markConnect(session.clientId, this.lastConnect.at);
      socket.send(encodeConnect(session.clientId, this.options.keepAliveSeconds, false));
    };
    socket.onmessage = (event) => {
      const data = event.data instanceof ArrayBuffer ? new Uint8Array(event.data) : (event.data as Uint8Array);
      let packets: Packet[];
      try {
        packets = this.decoder.push(data);
      } catch (err) {
        this.emit("error", new ClientError("Protocol", String(err)));
        socket.close(4000, "malformed MQTT");
        return;
      }
      for (const packet of packets) {
        if (packet.type === "connack") {
          // One CONNACK per connection (MQTT 3.1.1 §3.2): a second is a protocol
          // error, not another keep-alive timer, SUBSCRIBE and refresh.
          if (connacked) {
            this.emit("error", new ClientError("Protocol", "a second CONNACK on one connection"));
            socket.close(4000, "protocol error");
            return;
          }
          connacked = true;
          if (packet.returnCode === 0) acceptedAt = this.now();
          if (previous && previous !== socket && packet.returnCode === 0) previous.close(1000, "replaced by a fresh connection");
        }
        this.onPacket(packet, socket, session);
      }
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      if (this.pinger !== undefined) clearInterval(this.pinger);
      this.pinger = undefined;
      for (const pending of this.pendingPublishes.values()) pending.reject(new ClientError("Network", "connection lost"));
      this.pendingPublishes.clear();
      if (this.closing) return;
      if (!opened || !connacked) {
        // A refused handshake (an expired URL or credentials look the same from
        // here), or a CONNECT refused by policy (IoT closes without CONNACK: the
        // credentials may have been revoked, e.g. by a ban): fetch credentials
        // before the next try, and the vending API says what is wrong.
        this.fetchedAt = 0;
      }
      const why = `${event.code}${event.reason ? ": " + event.reason : ""}`;
      if (acceptedAt > 0 && this.now() - acceptedAt < this.options.stableAfterMs) {
        // Accepted, then closed soon after: on IoT that is what another client
        // taking the same client ID over looks like. Stop before it is a loop.
        this.shortLived += 1;
        if (this.shortLived >= this.options.maxShortLived) {
          this.emit("error", new ClientError("TakenOver", `the gateway closed ${this.shortLived} connections in a row within ${this.options.stableAfterMs} ms of accepting them (${why}): another client is probably using client ID ${session.clientId}`));
          this.fail();
          return;
        }
      }
      if (opened && !connacked && this.options.url !== undefined) {
        // What IoT does when a custom authorizer refuses: the upgrade succeeds,
        // then the connection closes without CONNACK. The next try gets a fresh token.
        this.emit("error", new ClientError("Unauthorized", `the gateway closed the connection before CONNACK (${why}): the custom authorizer refused the token, or its policy the client ID ${session.clientId}; its log says which`));
      } else {
        this.emit("error", new ClientError("Network", `connection closed (${why})`));
      }
      this.retry();
    };
  }

  private onPacket(packet: Packet, socket: WebSocketLike, session: Session): void {
    switch (packet.type) {
      case "connack": {
        if (packet.returnCode !== 0) {
          this.emit("error", new ClientError("Forbidden", `the gateway refused CONNECT (return code ${packet.returnCode})`));
          socket.close(4001, "refused");
          return;
        }
        // The backoff and the takeover count start over once the connection has
        // lived `stableAfterMs`, not at once: a connection taken over at once
        // must not retry at full speed.
        this.later(this.options.stableAfterMs, () => {
          if (this.socket === socket) {
            this.attempt = 0;
            this.shortLived = 0;
          }
        });
        if (this.pinger !== undefined) clearInterval(this.pinger);
        this.pinger = setInterval(() => socket.readyState === 1 && socket.send(PINGREQ), this.options.keepAliveSeconds * 1000);
        if (!packet.sessionPresent) this.subscribedAs = undefined;
        if (session.topics.length > 0 && this.subscribedAs !== session.clientId) {
          const filters = session.topics.map((topic) => ({ topic, qos: 1 as const }));
          socket.send(encodeSubscribe(this.packetId(), filters));
        }
        this.setState("connected");
        this.scheduleRefresh();
        return;
      }
      case "suback":
        if (packet.granted.some((code) => code === 0x80)) {
          this.emit("error", new ClientError("Forbidden", "the gateway refused a subscription: check the topics' grants"));
        } else {
          this.subscribedAs = session.clientId;
        }
        return;
      case "publish": {
        // `emit` contains a throwing handler, so the PUBACK always goes out:
        // an unacknowledged message would hold one of the gateway's in-flight slots.
        this.emit("message", { topic: packet.topic, payload: packet.payload, text: textDecoder.decode(packet.payload) });
        if (packet.qos === 1 && packet.packetId !== undefined) socket.send(encodePuback(packet.packetId));
        return;
      }
      case "puback": {
        const pending = this.pendingPublishes.get(packet.packetId);
        this.pendingPublishes.delete(packet.packetId);
        pending?.resolve();
        return;
      }
      default:
        return;
    }
  }

  /**
   * Vending: fetches resumed credentials at the refresh point, for the next
   * connect. Token mode: at the refresh point of the token's life, opens a new
   * connection with a fresh token (same client ID: the session carries over)
   * before the gateway ends this one at the token's expiry.
   */
  private scheduleRefresh(): void {
    if (this.options.url !== undefined) {
      if (this.tokenExpires === undefined) return;
      const at = this.fetchedAt + (this.tokenExpires - this.fetchedAt) * this.options.refreshFraction;
      this.later(Math.max(1000, at - this.now()), () => void this.run());
      return;
    }
    if (!this.vended) return;
    const expires = Date.parse(this.vended.credentials.expiration);
    const at = this.fetchedAt + (expires - this.fetchedAt) * this.options.refreshFraction;
    this.later(Math.max(0, at - this.now()), () => {
      this.refresh().catch((err) =>
        this.emit("error", err instanceof ClientError ? err : new ClientError("Network", String(err))),
      );
    });
  }
}

/** What one connection asks for: its client ID and the topics to subscribe to. */
interface Session {
  clientId: string;
  topics: string[];
}

/** The claims of a JWT, if `token` is one (unverified: only for `exp` and `sub`). */
function jwtClaims(token: string): Record<string, unknown> | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const json = textDecoder.decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
    const claims = JSON.parse(json) as unknown;
    return typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The client-ID prefix the project's JWT authorizer binds to `sub`: `u`, the
 * first 32 hex digits of SHA-256 of `sub`, and `-`
 * (`serverless_websockets_core::policy::authorizer::client_id_prefix`).
 */
export async function clientIdPrefix(sub: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", textEncoder.encode(sub)));
  return `u${Array.from(digest.slice(0, 16), (b) => b.toString(16).padStart(2, "0")).join("")}-`;
}

/** Starts a client: it connects, stays connected and reports through its events. */
export function connect(options: ConnectOptions): Client {
  return new Client(options);
}
