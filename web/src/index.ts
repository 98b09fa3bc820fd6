// serverless-websockets for the browser. The connection client (`connect`) is
// being built on these pieces: presigning in the browser and the MQTT codec.
export { presign } from "./sigv4";
export type { Credentials } from "./sigv4";
