import { ClientError } from "./types";
import type { ConnectOptions, Events, Message, State, WebSocketLike } from "./types";
import type { Grants } from "./vended";
export { ClientError };
export type { ConnectOptions, Message, State, WebSocketLike };
/** The least time between two CONNECTs with one client ID: IoT allows one per second. */
export declare const CONNECT_SPACING_MS = 1100;
export declare class Client {
    private currentState;
    private currentClientId;
    private readonly options;
    private readonly handlers;
    private vended;
    private fetchedAt;
    private socket;
    private decoder;
    private nextPacketId;
    private readonly pendingPublishes;
    private attempt;
    /** This client's last CONNECT: its client ID and when. */
    private lastConnect?;
    private timers;
    private pinger;
    private closing;
    private readonly identities;
    /** The client ID this client holds (its Web Lock), and its resume token. */
    private held;
    /** Connections in a row the gateway closed soon after accepting them. */
    private shortLived;
    /** Token mode: when the current token expires (ms), if it says. */
    private tokenExpires;
    /**
     * The client ID whose session on the gateway is known to hold the topics'
     * subscriptions: a SUBACK came for them, and no CONNACK since said the session
     * was gone. "Session present" alone is not enough: the session may come from a
     * CONNECT whose connection closed before the SUBACK, or from before a reload.
     */
    private subscribedAs;
    constructor(options: ConnectOptions);
    /** `connecting`, `connected`, `reconnecting`, `closed` (by `close()`) or `failed` (see the `error` event). */
    get state(): State;
    /** The MQTT client ID, once known. */
    get clientId(): string | undefined;
    /** Vending mode: what the current credentials allow, as the API said. */
    get grants(): Grants | undefined;
    /** Vending mode: the client's own topic. */
    get topic(): string | undefined;
    on<K extends keyof Events>(event: K, handler: Events[K]): this;
    /** Publishes `data` at QoS 1; resolves when the gateway acknowledges it. */
    publish(topic: string, data: string | Uint8Array): Promise<void>;
    /**
     * Fetches fresh credentials now (resuming: the same client ID) for the next
     * connect; the live connection is not interrupted. The client also does this on
     * its own at `refreshFraction` of the credentials' lifetime.
     */
    refresh(): Promise<void>;
    /** Disconnects for good (the persistent session stays with IoT until it expires). */
    close(): void;
    /**
     * Calls every handler of `event`. A handler that throws does not stop the
     * others, nor the packets after it: its error is reported on `error` (an
     * `error` handler that throws goes to the console instead).
     */
    private emit;
    /** Stops for good after an error the app must act on: no timers left, the client ID let go. */
    private fail;
    private setState;
    private now;
    private packetId;
    private later;
    private clearTimers;
    private readonly onOnline;
    /** Credentials are due for a refresh (or there are none). */
    private refreshDue;
    private token;
    /**
     * POSTs to the API, resuming the client ID this client holds; the first time,
     * a remembered one no other live client in this browser holds.
     */
    private fetchCredentials;
    /** Holds the vended client ID and remembers its resume token. */
    private remember;
    /** Takes freshly fetched credentials into use (for the next connect). */
    private use;
    private post;
    /** One round: credentials if due, presign, connect (or, in token mode, a token and its URL). */
    private run;
    /** A connect attempt threw: said, then the end for errors the app must act on, else a retry. */
    private attemptFailed;
    /** Vending mode: credentials if due, then a URL presigned now. */
    private vendedTarget;
    /** Token mode: a token now, the tab's client ID, the authorizer's URL. */
    private tokenTarget;
    /**
     * Token mode: a remembered client ID of this user that no other live client
     * holds (kept in `storage` across reloads), or a new one.
     */
    private tabClientId;
    /**
     * Opens the connection, but never sooner than `CONNECT_SPACING_MS` after this
     * client ID's last CONNECT (remembered across reloads): IoT allows one CONNECT
     * per second per client ID and refuses the next.
     */
    private openSpaced;
    private retry;
    private open;
    private onPacket;
    /**
     * Vending: fetches resumed credentials at the refresh point, for the next
     * connect. Token mode: at the refresh point of the token's life, opens a new
     * connection with a fresh token (same client ID: the session carries over)
     * before the gateway ends this one at the token's expiry.
     */
    private scheduleRefresh;
}
/**
 * The client-ID prefix the project's JWT authorizer binds to `sub`: `u`, the
 * first 32 hex digits of SHA-256 of `sub`, and `-`
 * (`serverless_websockets_core::policy::authorizer::client_id_prefix`).
 */
export declare function clientIdPrefix(sub: string): Promise<string>;
/** Starts a client: it connects, stays connected and reports through its events. */
export declare function connect(options: ConnectOptions): Client;
