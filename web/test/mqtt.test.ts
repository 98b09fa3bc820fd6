// The hand-written MQTT 3.1.1 codec against mqtt-packet (MQTT.js's codec) as the
// oracle: what we encode, it parses to the same packet; what it generates, we
// decode to the same packet, however the bytes are cut into messages; and no byte
// string makes the decoder do anything but return packets or throw MqttError.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import mqtt from "mqtt-packet";
import {
  Decoder,
  MqttError,
  encodeConnect,
  encodeSubscribe,
  encodePublish,
  encodePuback,
  PINGREQ,
  DISCONNECT,
} from "../src/internal";

/** What mqtt-packet parses from `bytes` (all packets). */
function oracleParse(bytes) {
  const parser = mqtt.parser({ protocolVersion: 4 });
  const packets = [];
  const errors = [];
  parser.on("packet", (p) => packets.push(p));
  parser.on("error", (e) => errors.push(e));
  parser.parse(Buffer.from(bytes));
  assert.deepEqual(errors, []);
  return packets;
}

const topic = fc.string({ unit: "grapheme", minLength: 1, maxLength: 60 }).filter((t) => !/[+#\u0000]/.test(t));
const payload = fc.uint8Array({ maxLength: 300 });
const packetId = fc.integer({ min: 1, max: 65535 });
const qos = fc.constantFrom(0, 1);
const runs = { numRuns: 300 };

test("CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ and DISCONNECT parse as mqtt-packet reads them", () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 128 }),
      fc.integer({ min: 0, max: 65535 }),
      fc.boolean(),
      (clientId, keepalive, clean) => {
        const [p] = oracleParse(encodeConnect(clientId, keepalive, clean));
        assert.equal(p.cmd, "connect");
        assert.equal(p.clientId, clientId);
        assert.equal(p.keepalive, keepalive);
        assert.equal(p.clean, clean);
        assert.equal(p.protocolVersion, 4);
      },
    ),
    runs,
  );
  fc.assert(
    fc.property(packetId, fc.array(fc.record({ topic, qos }), { minLength: 1, maxLength: 8 }), (id, filters) => {
      const [p] = oracleParse(encodeSubscribe(id, filters));
      assert.equal(p.messageId, id);
      assert.deepEqual(
        p.subscriptions.map((s) => ({ topic: s.topic, qos: s.qos })),
        filters.map((f) => ({ topic: f.topic, qos: f.qos })),
      );
    }),
    runs,
  );
  fc.assert(
    fc.property(topic, payload, qos, packetId, fc.boolean(), fc.boolean(), (t, body, q, id, retain, dup) => {
      const [p] = oracleParse(encodePublish(t, body, q, id, { retain, dup }));
      assert.equal(p.topic, t);
      assert.deepEqual(new Uint8Array(p.payload), body);
      assert.equal(p.qos, q);
      assert.equal(p.retain, retain);
      assert.equal(p.dup, dup);
      if (q === 1) assert.equal(p.messageId, id);
    }),
    runs,
  );
  fc.assert(
    fc.property(packetId, (id) => {
      assert.equal(oracleParse(encodePuback(id))[0].messageId, id);
    }),
    runs,
  );
  assert.equal(oracleParse(PINGREQ)[0].cmd, "pingreq");
  assert.equal(oracleParse(DISCONNECT)[0].cmd, "disconnect");
});

/** The packets mqtt-packet generates, and what our decoder should read from them. */
const serverPacket = fc.oneof(
  fc.record({ returnCode: fc.integer({ min: 0, max: 5 }), sessionPresent: fc.boolean() }).map((c) => [
    { cmd: "connack", ...c },
    { type: "connack", sessionPresent: c.sessionPresent, returnCode: c.returnCode },
  ]),
  fc.record({ messageId: packetId, granted: fc.array(fc.constantFrom(0, 1, 128), { minLength: 1, maxLength: 8 }) }).map((s) => [
    { cmd: "suback", ...s },
    { type: "suback", packetId: s.messageId, granted: s.granted },
  ]),
  packetId.map((id) => [{ cmd: "unsuback", messageId: id }, { type: "unsuback", packetId: id }]),
  packetId.map((id) => [{ cmd: "puback", messageId: id }, { type: "puback", packetId: id }]),
  fc.constant([{ cmd: "pingresp" }, { type: "pingresp" }]),
  fc.record({ topic, payload, qos, messageId: packetId, retain: fc.boolean(), dup: fc.boolean() }).map((p) => {
    const expected: Record<string, unknown> = { type: "publish", topic: p.topic, payload: p.payload, qos: p.qos, dup: p.dup, retain: p.retain };
    if (p.qos === 1) expected.packetId = p.messageId;
    return [{ cmd: "publish", ...p, payload: Buffer.from(p.payload) }, expected];
  }),
);

test("what mqtt-packet generates decodes to the same packets, however the bytes are split", () => {
  fc.assert(
    fc.property(fc.array(serverPacket, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }), (pairs, cuts) => {
      const bytes = Buffer.concat(pairs.map(([p]) => mqtt.generate(p as mqtt.Packet)));
      const decoder = new Decoder();
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const decoded = [];
      let from = 0;
      for (const at of [...points, bytes.length]) {
        decoded.push(...decoder.push(new Uint8Array(bytes.subarray(from, at))));
        from = at;
      }
      const plain = (p) => JSON.parse(JSON.stringify(p, (k, v) => (v instanceof Uint8Array ? Array.from(v) : v)));
      assert.deepEqual(plain(decoded), plain(pairs.map(([, expected]) => expected)));
    }),
    runs,
  );
});

test("arbitrary bytes never make the decoder fail other than with MqttError", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
      const decoder = new Decoder();
      try {
        for (const chunk of chunks) decoder.push(chunk);
      } catch (err) {
        assert.ok(err instanceof MqttError, String(err));
      }
    }),
    { numRuns: 3000 },
  );
  assert.throws(() => new Decoder().push(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), MqttError);
});
