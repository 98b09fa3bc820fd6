import type { LockManagerLike } from "./types";
type Store = Pick<Storage, "getItem" | "setItem" | "removeItem">;
/** What is remembered for one client ID (the resume token in vending mode). */
export interface Entry {
    clientId: string;
    resumeToken?: string;
    /** When this client ID last sent CONNECT (ms since the epoch), across reloads. */
    connectAt?: number;
}
/** A held client ID: `release` lets another client take it. */
export interface Held {
    entry: Entry;
    release: () => void;
}
/** The Web Locks API, when the page has it (secure contexts). */
export declare function defaultLocks(): LockManagerLike | null;
/** The remembered client IDs of one key (a vending API, or a token-mode endpoint). */
export declare class Identities {
    private readonly storage;
    private readonly key;
    private readonly locks;
    constructor(storage: Store | null, key: string, locks: LockManagerLike | null);
    private read;
    private write;
    /**
     * The first remembered entry no other live client holds, now held by this
     * one (`accept` may refuse an entry, e.g. a client ID of another user); or
     * `undefined` when there is none.
     */
    take(accept?: (entry: Entry) => boolean): Promise<Held | undefined>;
    /** Holds `clientId` (a new one: nobody else can hold it); its release. */
    hold(clientId: string): Promise<() => void>;
    /** Remembers `entry` (replacing the entry of the same client ID, or of `replaces`). */
    remember(entry: Entry, replaces?: string): void;
    /** When `clientId` last sent CONNECT, if remembered. */
    connectAt(clientId: string): number | undefined;
    /** Notes that `clientId` sends CONNECT at `at`. */
    markConnect(clientId: string, at: number): void;
    /** Forgets `clientId` (its resume token was refused). */
    forget(clientId: string): void;
    private lock;
}
export {};
