// Subscribe to one topic on the local gateway with MQTT.js, using the presigned URL
// the vending API returned, unchanged. Prints READY once subscribed, then
// MESSAGE <topic> <payload> for the first message, and exits 0; exits 2 if the
// connection is refused or closed first. With COUNT, waits for COUNT messages and
// prints MESSAGE <topic> <first word of the payload> <payload bytes> for each.
//
// Usage: node mqttjs_subscribe.js URL CLIENT_ID TOPIC [COUNT]
'use strict';
const mqtt = require('mqtt');

const [url, clientId, topic, count] = process.argv.slice(2);
const expected = count === undefined ? 1 : Number(count);
let received = 0;
const client = mqtt.connect(url, { clientId, protocolVersion: 4, reconnectPeriod: 0, keepalive: 30 });
let done = false;

client.on('connect', () => {
  client.subscribe(topic, { qos: 1 }, (err) => {
    if (err) {
      console.log(`REFUSED ${err.message}`);
      process.exit(2);
    }
    console.log('READY');
  });
});
client.on('message', (t, payload) => {
  const text = payload.toString();
  console.log(count === undefined ? `MESSAGE ${t} ${text}` : `MESSAGE ${t} ${text.split(' ')[0]} ${payload.length}`);
  received += 1;
  if (received < expected) return;
  done = true;
  client.end(false, () => process.exit(0));
});
client.on('error', (err) => {
  // After the message arrived, errors while closing (MQTT.js may write its PUBACK
  // after DISCONNECT, to a socket the broker already closed) do not matter.
  if (done) return;
  console.log(`REFUSED ${err.message}`);
  process.exit(2);
});
client.on('close', () => {
  if (!done) {
    console.log('REFUSED closed');
    process.exit(2);
  }
});
