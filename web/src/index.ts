// serverless-websockets for the browser: `connect()` gets credentials from your
// vending API, presigns in the browser, and keeps one client ID and one persistent
// session for the life of the tab — or, in token mode, connects through an IoT
// custom authorizer with your app's token.
export { connect, clientIdPrefix, Client, ClientError } from "./client";
export type { ConnectOptions, ErrorCode, Events, LockManagerLike, Message, State, WebSocketLike } from "./types";
export type { Grants } from "./vended";
export { presign } from "./sigv4";
export type { Credentials } from "./sigv4";
