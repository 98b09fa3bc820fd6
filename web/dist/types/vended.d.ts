import type { Credentials } from "./sigv4";
/** What the credentials allow: filters to subscribe to, topics (or filters) to publish to. */
export interface Grants {
    readonly subscribe: readonly string[];
    readonly publish: readonly string[];
}
export interface Vended {
    clientId: string;
    region: string;
    /** `wss://<endpoint>` (or `ws://` locally). */
    endpoint: string;
    /** The client's own topic. */
    topic: string;
    credentials: Credentials & {
        expiration: string;
    };
    /** What the credentials allow; absent from an API that does not say. */
    grants?: Grants;
    resumeToken?: string;
}
/** Parses the vending API's `200` body; a wrong shape is an `Api` error naming the field. */
export declare function parseVended(body: unknown): Vended;
/** Whether the MQTT topic filter `filter` matches `topic` (`+` one level, `#` the rest). */
export declare function topicMatches(filter: string, topic: string): boolean;
/**
 * Throws `Forbidden` naming the first of `filters` the grants do not allow to
 * subscribe to. IoT checks the filter string itself (`topicfilter/<filter>`):
 * a grant of `rooms/+` allows subscribing to `rooms/+`, not to `rooms/42`.
 */
export declare function checkSubscribe(grants: Grants, filters: readonly string[]): void;
/**
 * Whether a publish grant allows `topic`, as IoT reads it: the session policy
 * names `topic/<grant>` with each wildcard level (`+`, `#`) written as `*`,
 * which matches any characters, `/` included.
 */
export declare function publishAllowed(grant: string, topic: string): boolean;
/** Throws `Forbidden` naming `topic` when no publish grant allows it. */
export declare function checkPublish(grants: Grants, topic: string): void;
