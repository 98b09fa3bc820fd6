// serverless-websockets for the browser: `connect()` gets credentials from your
// vending API, presigns in the browser, and keeps one client ID and one persistent
// session for the life of the tab.
export { connect, Client, ClientError } from "./client";
export type { ConnectOptions, ErrorCode, Message, State, WebSocketLike } from "./client";
export { presign } from "./sigv4";
export type { Credentials } from "./sigv4";
