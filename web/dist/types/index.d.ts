export { connect, clientIdPrefix, Client, ClientError } from "./client";
export type { ConnectOptions, ErrorCode, Events, LockManagerLike, Message, State, WebSocketLike } from "./types";
export type { Grants } from "./vended";
export { presign } from "./sigv4";
export type { Credentials } from "./sigv4";
