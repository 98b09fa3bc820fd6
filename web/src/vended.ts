// The vending API's answer, parsed and checked rather than cast, and what its
// grants allow: a topic the credentials do not grant is refused here, naming
// it, instead of by the gateway closing the connection.

import { ClientError } from "./types";
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
  credentials: Credentials & { expiration: string };
  /** What the credentials allow; absent from an API that does not say. */
  grants?: Grants;
  resumeToken?: string;
}

/** Parses the vending API's `200` body; a wrong shape is an `Api` error naming the field. */
export function parseVended(body: unknown): Vended {
  const bad = (field: string) =>
    new ClientError("Api", `the credentials API's answer has no usable ${field} (is credentialsUrl the vending API?)`);
  const object = (value: unknown, field: string): Record<string, unknown> => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad(field);
    return value as Record<string, unknown>;
  };
  const string = (from: Record<string, unknown>, key: string, field = key): string => {
    const value = from[key];
    if (typeof value !== "string" || value === "") throw bad(field);
    return value;
  };
  const strings = (from: Record<string, unknown>, key: string, field: string): string[] => {
    const value = from[key] ?? [];
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) throw bad(field);
    return value as string[];
  };
  const root = object(body, "body");
  const credentials = object(root.credentials, "credentials");
  const grants = root.grants === undefined ? undefined : object(root.grants, "grants");
  if (root.resumeToken !== undefined && typeof root.resumeToken !== "string") throw bad("resumeToken");
  const resumeToken = typeof root.resumeToken === "string" ? root.resumeToken : undefined;
  const expiration = string(credentials, "expiration", "credentials.expiration");
  if (Number.isNaN(Date.parse(expiration))) throw bad("credentials.expiration");
  return {
    clientId: string(root, "clientId"),
    region: string(root, "region"),
    endpoint: string(root, "endpoint"),
    topic: string(root, "topic"),
    credentials: {
      accessKeyId: string(credentials, "accessKeyId", "credentials.accessKeyId"),
      secretAccessKey: string(credentials, "secretAccessKey", "credentials.secretAccessKey"),
      sessionToken: string(credentials, "sessionToken", "credentials.sessionToken"),
      expiration,
    },
    ...(grants
      ? {
          grants: {
            subscribe: strings(grants, "subscribe", "grants.subscribe"),
            publish: strings(grants, "publish", "grants.publish"),
          },
        }
      : {}),
    ...(resumeToken ? { resumeToken } : {}),
  };
}

/** Whether the MQTT topic filter `filter` matches `topic` (`+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

const list = (grants: readonly string[]) => (grants.length ? grants.join(", ") : "nothing");

/**
 * Throws `Forbidden` naming the first of `filters` the grants do not allow to
 * subscribe to. IoT checks the filter string itself (`topicfilter/<filter>`):
 * a grant of `rooms/+` allows subscribing to `rooms/+`, not to `rooms/42`.
 */
export function checkSubscribe(grants: Grants, filters: readonly string[]): void {
  const refused = filters.find((filter) => !grants.subscribe.includes(filter));
  if (refused !== undefined) {
    throw new ClientError(
      "Forbidden",
      `these credentials may not subscribe to "${refused}": they may subscribe to ${list(grants.subscribe)}`,
    );
  }
}

/**
 * Whether a publish grant allows `topic`, as IoT reads it: the session policy
 * names `topic/<grant>` with each wildcard level (`+`, `#`) written as `*`,
 * which matches any characters, `/` included.
 */
export function publishAllowed(grant: string, topic: string): boolean {
  let matcher = matchers.get(grant);
  if (!matcher) {
    matcher = matcherOf(grant);
    matchers.set(grant, matcher);
  }
  return matcher.test(topic);
}

/** Each publish grant's pattern, compiled once (a publish is checked against every grant). */
const matchers = new Map<string, RegExp>();

function matcherOf(grant: string): RegExp {
  const pattern = grant
    .split("/")
    .map((level) => (level === "+" || level === "#" ? ".*" : level.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${pattern}$`, "s");
}

/** Throws `Forbidden` naming `topic` when no publish grant allows it. */
export function checkPublish(grants: Grants, topic: string): void {
  if (!grants.publish.some((grant) => publishAllowed(grant, topic))) {
    throw new ClientError(
      "Forbidden",
      `these credentials may not publish to "${topic}": they may publish to ${list(grants.publish)}`,
    );
  }
}
