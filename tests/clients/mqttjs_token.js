// Connect with a token through a custom authorizer with MQTT.js, the way the
// "secret third option" post does it and docs/vend-or-authorize.md prints it:
// no credentials, no signing, the authorizer's name and the token in the URL.
// Subscribes to TOPIC, prints READY, then MESSAGE <topic> <payload> for the
// first message and exits 0; exits 2 if the connection is refused or closed first.
//
// Usage: node mqttjs_token.js ENDPOINT AUTHORIZER TOKEN CLIENT_ID TOPIC
'use strict';
const mqtt = require('mqtt');

const [endpoint, authorizer, token, clientId, topic] = process.argv.slice(2);

// As in the docs (ENDPOINT is wss://<your IoT endpoint> on AWS):
const client = mqtt.connect(
  `${endpoint}/mqtt?x-amz-customauthorizer-name=${encodeURIComponent(authorizer)}&token=${encodeURIComponent(token)}`,
  { clientId, protocolVersion: 4, reconnectPeriod: 0, keepalive: 30 },
);

let done = false;
client.on('connect', () => {
  client.subscribe(topic, { qos: 1 }, (err, granted) => {
    if (err || granted.some((g) => g.qos === 128)) {
      console.log(`REFUSED ${err ? err.message : 'subscription refused'}`);
      process.exit(2);
    }
    console.log('READY');
  });
});
client.on('message', (t, payload) => {
  console.log(`MESSAGE ${t} ${payload.toString()}`);
  done = true;
  client.end(false, () => process.exit(0));
});
client.on('error', (err) => {
  if (done) return;
  console.log(`REFUSED ${err.message}`);
  process.exit(2);
});
client.on('close', () => {
  if (!done) {
    console.log('REFUSED closed before a message (the authorizer refused, or its policy)');
    process.exit(2);
  }
});
