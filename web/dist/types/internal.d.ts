export { presign, signedHost, uriEncode } from "./sigv4";
export * from "./mqtt";
export { connect, Client, ClientError } from "./client";
export { RESUME_REFUSALS } from "./codes";
