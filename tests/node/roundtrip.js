// Produce N messages to a topic with kafkajs, then consume them back from the beginning.
//
//   node roundtrip.js BOOTSTRAP TOPIC [COUNT] [GROUP]
//
// Prints one JSON object on stdout:
//   {"produced": [{"partition", "offset"}...], "consumed": [{"key", "value", "partition", "offset"}...]}
// Logs go to stderr. Exits non-zero on error or when fewer than COUNT messages come back in time.
'use strict';

const { client } = require('./client');

const [bootstrap, topic, countArg, groupArg] = process.argv.slice(2);
if (!bootstrap || !topic) {
  console.error('usage: node roundtrip.js BOOTSTRAP TOPIC [COUNT] [GROUP]');
  process.exit(2);
}
const count = Number(countArg || 10);
const groupId = groupArg || `${topic}-kafkajs-group`;
const timeoutMs = Number(process.env.ROUNDTRIP_TIMEOUT_MS || 30000);

const kafka = client('odradek-tests-roundtrip', bootstrap, 10);

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  } catch (e) {
    process.stderr.write(`createTopics failed (${e.message}); relying on auto-creation\n`);
  }
  await admin.disconnect();

  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++) messages.push({ key: `k-${i}`, value: `v-${i}` });
  const results = await producer.send({ topic, messages, acks: -1 });
  await producer.disconnect();
  const produced = results.map((r) => ({ partition: r.partition, offset: Number(r.baseOffset), error: r.errorCode }));

  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const consumed = [];
  let finish;
  const done = new Promise((resolve) => { finish = resolve; });
  const timer = setTimeout(() => finish('timeout'), timeoutMs);
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      consumed.push({
        key: message.key === null ? null : message.key.toString(),
        value: message.value === null ? null : message.value.toString(),
        partition,
        offset: Number(message.offset),
      });
      if (consumed.length >= count) finish('done');
    },
  });
  const outcome = await done;
  clearTimeout(timer);
  await consumer.disconnect();
  process.stdout.write(JSON.stringify({ produced, consumed, outcome }) + '\n');
  return outcome === 'done' ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`roundtrip.js failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
