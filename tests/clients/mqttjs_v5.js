// MQTT 5 with MQTT.js (protocolVersion 5) on the local gateway, as the admin:
//  1. request/response: a requester publishes with a response topic and correlation
//     data; a responder answers on the response topic with the same correlation
//     data and a user property. Prints RESPONSE correlation=<…> user=<k>:<v>.
//  2. message expiry: a message published with a 30 s expiry arrives with the
//     remaining interval. Prints EXPIRY remaining<=30.
//  3. topic aliases: the publisher names the topic once with alias 1, then sends
//     by alias only (MQTT.js sends an empty topic). Prints ALIAS <n> messages on <topic>.
// Exits 0 when all three are done, 2 on any error.
//
// Usage: node mqttjs_v5.js PRESIGNED_URL
'use strict';
const mqtt = require('mqtt');

const [url] = process.argv.slice(2);
const fail = (why) => {
  console.log(`ERROR ${why}`);
  process.exit(2);
};
const open = (clientId, extra = {}) =>
  new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { clientId, protocolVersion: 5, reconnectPeriod: 0, keepalive: 30, ...extra });
    client.once('connect', (ack) => resolve([client, ack]));
    client.once('error', reject);
  });
const subscribe = (client, topic) =>
  new Promise((resolve, reject) =>
    client.subscribe(topic, { qos: 1 }, (err, granted) => (err ? reject(err) : resolve(granted))));
const nextMessage = (client) =>
  new Promise((resolve) => client.once('message', (topic, payload, packet) => resolve({ topic, payload, packet })));

async function main() {
  const [responder, ack] = await open('js-responder');
  if (ack.properties?.topicAliasMaximum !== 8) fail(`topicAliasMaximum ${ack.properties?.topicAliasMaximum}`);
  await subscribe(responder, 'service/requests');
  responder.on('message', (_topic, _payload, packet) => {
    const { responseTopic, correlationData } = packet.properties || {};
    responder.publish(responseTopic, 'answer', {
      qos: 1,
      properties: { correlationData, userProperties: { 'answered-by': 'responder' } },
    });
  });

  const [requester] = await open('js-requester');
  await subscribe(requester, 'replies/js-requester');
  const reply = nextMessage(requester);
  requester.publish('service/requests', 'question', {
    qos: 1,
    properties: { responseTopic: 'replies/js-requester', correlationData: Buffer.from('req-7') },
  });
  const { packet } = await reply;
  const user = Object.entries(packet.properties?.userProperties || {}).map(([k, v]) => `${k}:${v}`).join(',');
  console.log(`RESPONSE correlation=${packet.properties?.correlationData} user=${user}`);

  await subscribe(requester, 'news/expiring');
  const expiring = nextMessage(requester);
  responder.publish('news/expiring', 'soon gone', { qos: 1, properties: { messageExpiryInterval: 30 } });
  const remaining = (await expiring).packet.properties?.messageExpiryInterval;
  if (!(remaining > 0 && remaining <= 30)) fail(`messageExpiryInterval ${remaining}`);
  console.log('EXPIRY remaining<=30');

  await subscribe(requester, 'sensors/+/temperature');
  const topics = [];
  const got = new Promise((resolve) =>
    requester.on('message', (topic) => {
      if (!topic.startsWith('sensors/')) return;
      topics.push(topic);
      if (topics.length === 3) resolve();
    }));
  const [aliaser] = await open('js-aliaser');
  aliaser.publish('sensors/hall/temperature', '19.0', { qos: 1, properties: { topicAlias: 1 } });
  aliaser.publish('', '19.1', { qos: 1, properties: { topicAlias: 1 } });
  aliaser.publish('', '19.2', { qos: 1, properties: { topicAlias: 1 } });
  await got;
  if (new Set(topics).size !== 1) fail(`topics ${topics}`);
  console.log(`ALIAS ${topics.length} messages on ${topics[0]}`);
  for (const client of [responder, requester, aliaser]) client.end();
  process.exit(0);
}

main().catch((err) => fail(err.message));
