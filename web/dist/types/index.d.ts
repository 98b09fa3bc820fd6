export { connect, clientIdPrefix, Client, ClientError } from "./client";
export type { ConnectOptions, ErrorCode, Message, State, WebSocketLike } from "./client";
export { presign } from "./sigv4";
export type { Credentials } from "./sigv4";
