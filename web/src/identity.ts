// Which client ID a client uses, and that no other live client in this browser
// uses it at the same time.
//
// A browser copies `sessionStorage` into a tab opened from another (duplicate
// tab, `window.open`, a same-origin `target=_blank` link), and two `connect()`
// calls in one page share it. Both would resume the same client ID, and the
// gateway closes the older connection each time the other connects: a takeover
// loop. So every stored ID is taken under a Web Lock named after it, held for
// the client's life; an ID whose lock another client holds is skipped, and the
// client gets its own. The browser releases a page's locks when it goes away,
// so a reload resumes as before.

import type { LockManagerLike } from "./types";

type Store = Pick<Storage, "getItem" | "setItem" | "removeItem">;

/** The IDs remembered per key, newest last; more are dropped, oldest first. */
const MAX_REMEMBERED = 8;

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
export function defaultLocks(): LockManagerLike | null {
  const locks = (globalThis.navigator as { locks?: LockManagerLike } | undefined)?.locks;
  return locks && typeof locks.request === "function" ? locks : null;
}

/** Takes the lock `name` if it is free; resolves to its release, or `undefined` when held elsewhere. */
function tryLock(locks: LockManagerLike, name: string): Promise<(() => void) | undefined> {
  return new Promise((resolve, reject) => {
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(undefined);
          return;
        }
        return new Promise<void>((release) => resolve(release));
      })
      .catch(reject);
  });
}

/** The remembered client IDs of one key (a vending API, or a token-mode endpoint). */
export class Identities {
  constructor(
    private readonly storage: Store | null,
    private readonly key: string,
    private readonly locks: LockManagerLike | null,
  ) {}

  private read(): Entry[] {
    const raw = this.storage?.getItem(this.key);
    if (!raw) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return [];
    }
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (e): e is Entry =>
        typeof e === "object" &&
        e !== null &&
        typeof (e as Entry).clientId === "string" &&
        (e as Entry).clientId !== "" &&
        ((e as Entry).resumeToken === undefined || typeof (e as Entry).resumeToken === "string") &&
        ((e as Entry).connectAt === undefined || Number.isFinite((e as Entry).connectAt)),
    );
  }

  private write(entries: Entry[]): void {
    this.storage?.setItem(this.key, JSON.stringify(entries.slice(-MAX_REMEMBERED)));
  }

  /**
   * The first remembered entry no other live client holds, now held by this
   * one (`accept` may refuse an entry, e.g. a client ID of another user); or
   * `undefined` when there is none.
   */
  async take(accept: (entry: Entry) => boolean = () => true): Promise<Held | undefined> {
    for (const entry of this.read()) {
      if (!accept(entry)) continue;
      const release = await this.lock(entry.clientId);
      if (release) return { entry, release };
    }
    return undefined;
  }

  /** Holds `clientId` (a new one: nobody else can hold it); its release. */
  async hold(clientId: string): Promise<() => void> {
    return (await this.lock(clientId)) ?? (() => {});
  }

  /** Remembers `entry` (replacing the entry of the same client ID, or of `replaces`). */
  remember(entry: Entry, replaces?: string): void {
    const entries = this.read();
    // When the client ID last connected outlives a new resume token.
    const connectAt = entry.connectAt ?? entries.find((e) => e.clientId === entry.clientId)?.connectAt;
    const others = entries.filter((e) => e.clientId !== entry.clientId && e.clientId !== replaces);
    this.write([...others, connectAt === undefined ? entry : { ...entry, connectAt }]);
  }

  /** When `clientId` last sent CONNECT, if remembered. */
  connectAt(clientId: string): number | undefined {
    return this.read().find((e) => e.clientId === clientId)?.connectAt;
  }

  /** Notes that `clientId` sends CONNECT at `at`. */
  markConnect(clientId: string, at: number): void {
    const entries = this.read();
    const entry = entries.find((e) => e.clientId === clientId);
    if (!entry) return;
    entry.connectAt = at;
    this.write(entries);
  }

  /** Forgets `clientId` (its resume token was refused). */
  forget(clientId: string): void {
    this.write(this.read().filter((e) => e.clientId !== clientId));
  }

  private async lock(clientId: string): Promise<(() => void) | undefined> {
    // Without Web Locks (an insecure context, an old browser) every ID is free:
    // the client's takeover guard is then what stops a loop.
    if (!this.locks) return () => {};
    return tryLock(this.locks, `serverless-websockets:client:${clientId}`);
  }
}
