export type State = "connecting" | "connected" | "reconnecting" | "closed" | "failed";
export type ErrorCode = "Unauthorized" | "Forbidden"
/** The operator banned this user (the vending API's `403 Banned`): the client stops. */
 | "Banned" | "ResumeRefused" | "Network" | "Misconfigured" | "Protocol" | "Api"
/** An application's event handler threw; the client went on. */
 | "Handler";
/** An error the client reports: `code` says what kind, `message` what happened. */
export declare class ClientError extends Error {
    readonly code: ErrorCode;
    readonly status?: number | undefined;
    constructor(code: ErrorCode, message: string, status?: number | undefined);
}
export interface Message {
    topic: string;
    payload: Uint8Array;
    /** The payload as UTF-8 text (with U+FFFD for invalid bytes). */
    text: string;
}
export interface ConnectOptions {
    /** The vending API's URL, e.g. `https://…/credentials` (vending mode). */
    credentialsUrl?: string;
    /**
     * A JWT: for the vending API (`Authorization: Bearer`), or in token mode for
     * the custom authorizer. A function is called for every connect, so it can
     * return a fresh token.
     */
    token?: string | (() => string | Promise<string>);
    /**
     * Vending mode: narrow the token's claims to these values, e.g. `{ rooms: ["42", "7"] }`
     * for the rooms on screen: the grants follow (`{claims.rooms}` templates). Kept
     * across resumes by the API.
     */
    claims?: Record<string, string[]>;
    /** Token mode: the IoT endpoint, `wss://<endpoint>` (the `/mqtt` path is added). */
    url?: string;
    /** Token mode: the custom authorizer's name (`x-amz-customauthorizer-name`). */
    authorizer?: string;
    /** Token mode: the authorizer's token key name. Default `token`. */
    tokenKeyName?: string;
    /** Token mode, for an authorizer with signing on: the token's signature (base64). */
    signature?: (token: string) => string | Promise<string>;
    /**
     * Token mode: what every client ID of this user starts with. By default the one
     * the project's JWT authorizer binds to the token's `sub` (`u` + 32 hex digits
     * of SHA-256 of `sub` + `-`); each tab adds its own random suffix.
     */
    clientIdPrefix?: string;
    /**
     * Topics to subscribe to besides the client's own (they need grants). In token
     * mode these are all the topics; `{clientId}` stands for the client ID.
     */
    topics?: string[];
    /** MQTT keep-alive in seconds (IoT accepts 30–1200). Default 60. */
    keepAliveSeconds?: number;
    /** Refresh (resume) the credentials after this fraction of their lifetime. Default 0.8. */
    refreshFraction?: number;
    /** Where the resume token lives; `sessionStorage` by default: one client ID per tab. */
    storage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
    /** Backoff bounds in milliseconds. Default 500 and 30000. */
    backoffMinMs?: number;
    backoffMaxMs?: number;
    /** For tests and other runtimes: the WebSocket, fetch, clock and randomness to use. */
    WebSocket?: new (url: string, protocols: string[]) => WebSocketLike;
    fetch?: typeof fetch;
    now?: () => number;
    random?: () => number;
}
/** The part of the browser's WebSocket the client uses. */
export interface WebSocketLike {
    binaryType: string;
    readyState: number;
    onopen: ((ev: unknown) => void) | null;
    onmessage: ((ev: {
        data: unknown;
    }) => void) | null;
    onclose: ((ev: {
        code: number;
        reason: string;
    }) => void) | null;
    onerror: ((ev: unknown) => void) | null;
    send(data: Uint8Array): void;
    close(code?: number, reason?: string): void;
}
type Events = {
    state: (state: State) => void;
    message: (message: Message) => void;
    error: (error: ClientError) => void;
};
export declare class Client {
    state: State;
    clientId: string | undefined;
    private readonly options;
    private readonly handlers;
    private vended;
    private fetchedAt;
    private socket;
    private decoder;
    private nextPacketId;
    private readonly pendingPublishes;
    private attempt;
    private timers;
    private pinger;
    private closing;
    private readonly storageKey;
    /** Token mode: when the current token expires (ms), if it says. */
    private tokenExpires;
    constructor(options: ConnectOptions);
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
    private setState;
    private now;
    private get storage();
    private packetId;
    private later;
    private clearTimers;
    private readonly onOnline;
    /** Credentials are due for a refresh (or there are none). */
    private refreshDue;
    private token;
    /** POSTs to the API, resuming with the stored token when there is one. */
    private fetchCredentials;
    private post;
    /** One round: credentials if due, presign, connect (or, in token mode, a token and its URL). */
    private run;
    /** Vending mode: credentials if due, then a URL presigned now. */
    private vendedTarget;
    /** Token mode: a token now, the tab's client ID, the authorizer's URL. */
    private tokenTarget;
    /** The client ID of this tab: kept in `storage` across reloads, new per tab. */
    private tabClientId;
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
export {};
