// The client's public types: options, states, events and errors.

export type State = "connecting" | "connected" | "reconnecting" | "closed" | "failed";

export type ErrorCode =
  | "Unauthorized"
  /** The API or the credentials refuse what was asked; `message` names the topic or claim. */
  | "Forbidden"
  /**
   * Another client kept taking this client ID over (the gateway closed each
   * connection soon after it was accepted); the client stopped instead of fighting.
   */
  | "TakenOver"
  /** The operator banned this user (the vending API's `403 Banned`): the client stops. */
  | "Banned"
  | "ResumeRefused"
  | "Network"
  | "Misconfigured"
  | "Protocol"
  | "Api"
  /** An application's event handler threw; the client went on. */
  | "Handler";

/** An error the client reports: `code` says what kind, `message` what happened. */
export class ClientError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "ClientError";
  }
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
  /**
   * Where resume tokens (token mode: client IDs) live; `sessionStorage` by
   * default. A client ID is held by one live client at a time in this browser
   * (Web Locks): a tab duplicated from another, or a second `connect()` in the
   * same page, gets its own.
   */
  storage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  /**
   * Consecutive connections the gateway closes within `stableAfterMs` of
   * accepting them before the client gives up with `TakenOver`. Default 5.
   */
  maxShortLived?: number;
  /** How long a connection must live to count as stable (and reset the backoff). Default 10000. */
  stableAfterMs?: number;
  /** Backoff bounds in milliseconds. Default 500 and 30000. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** For tests and other runtimes: the WebSocket, fetch, clock and randomness to use. */
  WebSocket?: new (url: string, protocols: string[]) => WebSocketLike;
  fetch?: typeof fetch;
  now?: () => number;
  random?: () => number;
  /** For tests: the Web Locks API (`navigator.locks` by default; `null`: none). */
  locks?: LockManagerLike | null;
}

/** The part of the Web Locks API the client uses (`navigator.locks`). */
export interface LockManagerLike {
  request(
    name: string,
    options: { ifAvailable: boolean },
    callback: (lock: unknown) => Promise<void> | void,
  ): Promise<unknown>;
}

/** The part of the browser's WebSocket the client uses. */
export interface WebSocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** The events a client emits. */
export type Events = {
  state: (state: State) => void;
  message: (message: Message) => void;
  error: (error: ClientError) => void;
};
