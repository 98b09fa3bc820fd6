export { presign, signedHost, uriEncode } from "./sigv4";
export * from "./mqtt";
export { connect, clientIdPrefix, Client, ClientError } from "./client";
export { BANNED, RESUME_REFUSALS } from "./codes";
export { parseVended, topicMatches, publishAllowed, checkSubscribe, checkPublish } from "./vended";
export { Identities } from "./identity";
