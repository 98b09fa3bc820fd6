// A minimal MQTT 3.1.1 codec for the packets this client sends and receives —
// CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ, DISCONNECT out; CONNACK, SUBACK,
// PUBLISH, PUBACK, UNSUBACK, PINGRESP in. Hand-written because the well-kept
// codecs do not fit the bundle budget (MQTT.js's `mqtt-packet` pulls in Node's
// Buffer and streams: ~100 KB gzipped with MQTT.js); property tests check it
// against `mqtt-packet` as the oracle in both directions, and the decoder is
// fuzzed with arbitrary bytes (web/test/mqtt.test.mjs).
// Spec: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html

export type QoS = 0 | 1;

export type Packet =
  | { type: "connack"; sessionPresent: boolean; returnCode: number }
  | { type: "suback"; packetId: number; granted: number[] }
  | { type: "unsuback"; packetId: number }
  | {
      type: "publish";
      topic: string;
      payload: Uint8Array;
      qos: QoS;
      dup: boolean;
      retain: boolean;
      packetId?: number;
    }
  | { type: "puback"; packetId: number }
  | { type: "pingresp" };

/** AWS IoT's largest packet (128 KiB payload plus headers). */
export const MAX_PACKET_BYTES = 128 * 1024 + 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export class MqttError extends Error {}

function remainingLength(length: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return bytes;
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function utf8(text: string): number[] {
  const bytes = encoder.encode(text);
  if (bytes.length > 0xffff) throw new MqttError("string longer than 65535 bytes");
  return [...u16(bytes.length), ...bytes];
}

function frame(first: number, body: ArrayLike<number>): Uint8Array {
  const header = [first, ...remainingLength(body.length)];
  const out = new Uint8Array(header.length + body.length);
  out.set(header, 0);
  out.set(body as ArrayLike<number>, header.length);
  return out;
}

function packetId(id: number): number[] {
  if (!Number.isInteger(id) || id < 1 || id > 0xffff) throw new MqttError(`packet identifier ${id} is not 1–65535`);
  return u16(id);
}

export function encodeConnect(clientId: string, keepAliveSeconds: number, cleanSession: boolean): Uint8Array {
  const flags = cleanSession ? 0x02 : 0x00;
  const body = [...utf8("MQTT"), 4, flags, ...u16(keepAliveSeconds), ...utf8(clientId)];
  return frame(0x10, body);
}

export function encodeSubscribe(id: number, filters: { topic: string; qos: QoS }[]): Uint8Array {
  const body = [...packetId(id)];
  for (const f of filters) body.push(...utf8(f.topic), f.qos);
  return frame(0x82, body);
}

export function encodePublish(
  topic: string,
  payload: Uint8Array,
  qos: QoS,
  id?: number,
  options: { retain?: boolean; dup?: boolean } = {},
): Uint8Array {
  const first = 0x30 | (options.dup ? 0x08 : 0) | (qos << 1) | (options.retain ? 0x01 : 0);
  const head = [...utf8(topic), ...(qos > 0 ? packetId(id ?? 0) : [])];
  const body = new Uint8Array(head.length + payload.length);
  body.set(head, 0);
  body.set(payload, head.length);
  return frame(first, body);
}

export function encodePuback(id: number): Uint8Array {
  return frame(0x40, packetId(id));
}

export const PINGREQ = new Uint8Array([0xc0, 0x00]);
export const DISCONNECT = new Uint8Array([0xe0, 0x00]);

/**
 * A streaming decoder: bytes in (as WebSocket messages arrive; a packet may span
 * messages and a message may carry several), packets out. Malformed input throws
 * an `MqttError`; the connection should then be closed.
 */
export class Decoder {
  /** Bytes received and not yet parsed: `buffer[start..end]`. */
  private buffer = new Uint8Array(0);
  private start = 0;
  private end = 0;

  push(bytes: Uint8Array): Packet[] {
    let view: Uint8Array;
    if (this.start === this.end) {
      // Nothing pending: parse the message where it is, no copy.
      view = bytes;
    } else {
      this.append(bytes);
      view = this.buffer.subarray(this.start, this.end);
    }
    const packets: Packet[] = [];
    let offset = 0;
    for (;;) {
      const parsed = readPacket(view, offset);
      if (!parsed) break;
      packets.push(parsed.packet);
      offset = parsed.next;
    }
    if (view === bytes) {
      this.start = this.end = 0;
      if (offset < bytes.length) this.append(bytes.subarray(offset));
    } else {
      this.start += offset;
      if (this.start === this.end) this.start = this.end = 0;
    }
    return packets;
  }

  /** Appends to the pending bytes, growing the buffer by doubling (amortized O(1) a byte). */
  private append(bytes: Uint8Array): void {
    const pending = this.end - this.start;
    if (this.end + bytes.length > this.buffer.length) {
      const capacity = Math.max(this.buffer.length * 2, pending + bytes.length, 1024);
      const grown = new Uint8Array(capacity);
      grown.set(this.buffer.subarray(this.start, this.end), 0);
      this.buffer = grown;
      this.start = 0;
      this.end = pending;
    }
    this.buffer.set(bytes, this.end);
    this.end += bytes.length;
  }
}

/** One packet at `offset`, or `undefined` when more bytes are needed. */
function readPacket(bytes: Uint8Array, offset: number): { packet: Packet; next: number } | undefined {
  if (bytes.length - offset < 2) return undefined;
  const first = bytes[offset];
  let length = 0;
  let multiplier = 1;
  let at = offset + 1;
  for (let i = 0; ; i++) {
    if (i === 4) throw new MqttError("remaining length longer than 4 bytes");
    if (at >= bytes.length) return undefined;
    const byte = bytes[at++];
    length += (byte & 0x7f) * multiplier;
    multiplier *= 128;
    if ((byte & 0x80) === 0) break;
  }
  if (length > MAX_PACKET_BYTES) throw new MqttError(`packet of ${length} bytes is over the limit`);
  if (bytes.length - at < length) return undefined;
  const body = bytes.subarray(at, at + length);
  return { packet: parse(first, body), next: at + length };
}

function need(body: Uint8Array, n: number, what: string): void {
  if (body.length < n) throw new MqttError(`${what} is too short`);
}

function readU16(body: Uint8Array, at: number): number {
  return (body[at] << 8) | body[at + 1];
}

function parse(first: number, body: Uint8Array): Packet {
  const type = first >> 4;
  const flags = first & 0x0f;
  switch (type) {
    case 2: {
      if (flags !== 0 || body.length !== 2) throw new MqttError("malformed CONNACK");
      if (body[0] & 0xfe) throw new MqttError("CONNACK reserved flags set");
      return { type: "connack", sessionPresent: (body[0] & 1) === 1, returnCode: body[1] };
    }
    case 3: {
      const qos = (flags >> 1) & 0x03;
      if (qos > 1) throw new MqttError(`PUBLISH with QoS ${qos}`);
      need(body, 2, "PUBLISH");
      const topicLength = readU16(body, 0);
      const headLength = 2 + topicLength + (qos > 0 ? 2 : 0);
      need(body, headLength, "PUBLISH");
      let topic: string;
      try {
        topic = decoder.decode(body.subarray(2, 2 + topicLength));
      } catch {
        throw new MqttError("PUBLISH topic is not UTF-8");
      }
      const packet: Packet = {
        type: "publish",
        topic,
        payload: body.slice(headLength),
        qos: qos as QoS,
        dup: (flags & 0x08) !== 0,
        retain: (flags & 0x01) !== 0,
      };
      if (qos > 0) {
        packet.packetId = readU16(body, 2 + topicLength);
        if (packet.packetId === 0) throw new MqttError("PUBLISH packet identifier 0");
      }
      return packet;
    }
    case 4:
      if (flags !== 0 || body.length !== 2) throw new MqttError("malformed PUBACK");
      return { type: "puback", packetId: readU16(body, 0) };
    case 9:
      if (flags !== 0 || body.length < 3) throw new MqttError("malformed SUBACK");
      return { type: "suback", packetId: readU16(body, 0), granted: Array.from(body.subarray(2)) };
    case 11:
      if (flags !== 0 || body.length !== 2) throw new MqttError("malformed UNSUBACK");
      return { type: "unsuback", packetId: readU16(body, 0) };
    case 13:
      if (flags !== 0 || body.length !== 0) throw new MqttError("malformed PINGRESP");
      return { type: "pingresp" };
    default:
      throw new MqttError(`unexpected packet type ${type} from the server`);
  }
}
