// What the unit tests reach into: the presigner and the MQTT codec. Not part of
// the package's public API.
export { presign, signedHost, uriEncode } from "./sigv4";
export * from "./mqtt";
