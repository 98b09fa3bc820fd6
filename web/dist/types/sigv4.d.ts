/** Temporary AWS credentials, as the vending API returns them. */
export interface Credentials {
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken: string;
}
/** IoT stops accepting a URL about 15 minutes after it was signed. */
export declare const EXPIRES_SECONDS = 900;
/** RFC 3986 encoding as SigV4 wants it: only A–Z a–z 0–9 - _ . ~ stay as they are. */
export declare function uriEncode(value: string): string;
/**
 * The host SigV4 signs: the endpoint's authority without a default port.
 * `endpoint` is `wss://host[:port]` or `ws://host:port`.
 */
export declare function signedHost(endpoint: string): string;
/**
 * A `wss://…/mqtt` URL presigned for `credentials` at `time`, valid for IoT's
 * 15 minutes.
 */
export declare function presign(endpoint: string, region: string, credentials: Credentials, time: Date): Promise<string>;
