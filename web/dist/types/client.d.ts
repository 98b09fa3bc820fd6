export type State = "connecting" | "connected" | "reconnecting" | "closed" | "failed";
export type ErrorCode = "Unauthorized" | "Forbidden" | "ResumeRefused" | "Network" | "Misconfigured" | "Protocol" | "Api"
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
    /** The vending API's URL, e.g. `https://…/credentials`. */
    credentialsUrl: string;
    /** A bearer token (JWT) for the API, or a function that returns one. */
    token?: string | (() => string | Promise<string>);
    /** Topics to subscribe to besides the client's own (they need grants). */
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
    /** One round: credentials if due, presign, connect. */
    private run;
    private retry;
    private open;
    private onPacket;
    /** Fetches resumed credentials at the refresh point, for the next connect. */
    private scheduleRefresh;
}
/** Starts a client: it connects, stays connected and reports through its events. */
export declare function connect(options: ConnectOptions): Client;
export {};
