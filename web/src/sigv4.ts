// SigV4 presigned URLs for AWS IoT Core's MQTT-over-WebSocket endpoint, signed in
// the browser with WebCrypto: the same bytes as botocore's SigV4QueryAuth for
// service `iotdevicegateway` (checked against client-example/tests/data/
// botocore-presign.json), with the session token appended after the signature,
// unsigned, as IoT requires.

/** Temporary AWS credentials, as the vending API returns them. */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

const SERVICE = "iotdevicegateway";
/** IoT stops accepting a URL about 15 minutes after it was signed. */
export const EXPIRES_SECONDS = 900;
/** SHA-256 of the empty payload. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const encoder = new TextEncoder();

/** RFC 3986 encoding as SigV4 wants it: only A–Z a–z 0–9 - _ . ~ stay as they are. */
export function uriEncode(value: string): string {
  let out = "";
  for (const byte of encoder.encode(value)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(text: string): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

async function hmac(key: ArrayBuffer | Uint8Array, text: string): Promise<ArrayBuffer> {
  const raw = key instanceof Uint8Array ? key : new Uint8Array(key);
  const cryptoKey = await crypto.subtle.importKey("raw", raw as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(text));
}

/** `20261122T054000Z` and `20261122` for a time. */
function amzDates(time: Date): [string, string] {
  const iso = time.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return [iso, iso.slice(0, 8)];
}

/**
 * The host SigV4 signs: the endpoint's authority without a default port.
 * `endpoint` is `wss://host[:port]` or `ws://host:port`.
 */
export function signedHost(endpoint: string): string {
  const url = new URL(endpoint.replace(/^wss:/, "https:").replace(/^ws:/, "http:"));
  return url.host;
}

/**
 * A `wss://…/mqtt` URL presigned for `credentials` at `time`, valid for IoT's
 * 15 minutes.
 */
export async function presign(endpoint: string, region: string, credentials: Credentials, time: Date): Promise<string> {
  const base = endpoint.replace(/\/+$/, "");
  const host = signedHost(base);
  const [amzDate, date] = amzDates(time);
  const scope = `${date}/${region}/${SERVICE}/aws4_request`;
  const query: [string, string][] = [
    ["X-Amz-Algorithm", "AWS4-HMAC-SHA256"],
    ["X-Amz-Credential", `${credentials.accessKeyId}/${scope}`],
    ["X-Amz-Date", amzDate],
    ["X-Amz-Expires", String(EXPIRES_SECONDS)],
    ["X-Amz-SignedHeaders", "host"],
  ];
  const canonicalQuery = query.map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).join("&");
  const canonicalRequest = ["GET", "/mqtt", canonicalQuery, `host:${host}\n`, "host", EMPTY_SHA256].join("\n");
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, await sha256Hex(canonicalRequest)].join("\n");
  let key: ArrayBuffer | Uint8Array = encoder.encode(`AWS4${credentials.secretAccessKey}`);
  for (const part of [date, region, SERVICE, "aws4_request"]) {
    key = await hmac(key, part);
  }
  const signature = hex(await hmac(key, stringToSign));
  return (
    `${base}/mqtt?${canonicalQuery}&X-Amz-Signature=${signature}` +
    `&X-Amz-Security-Token=${uriEncode(credentials.sessionToken)}`
  );
}
