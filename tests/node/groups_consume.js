// A kafkajs consumer-group round trip: consumer.run in a group until COUNT messages have arrived.
//
//   node groups_consume.js BOOTSTRAP TOPIC GROUP COUNT
//
// The consumer subscribes from the beginning with kafkajs' defaults (autoCommit on: offsets are
// committed as batches are resolved, and once more on disconnect). Prints one JSON object on stdout:
//   {"messages": [{"partition", "offset", "value"}...], "assigned": [partition...]}
// Logs go to stderr; exits 1 on any error, 3 when COUNT messages did not arrive within 30 s.
'use strict';

const { client } = require('./client');

const [bootstrap, topic, groupId, countArg] = process.argv.slice(2);
if (!bootstrap || !topic || !groupId) {
  console.error('usage: node groups_consume.js BOOTSTRAP TOPIC GROUP COUNT');
  process.exit(2);
}
const count = Number(countArg || 20);

const kafka = client('odradek-tests-groups-consume', bootstrap);

async function main() {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
  const messages = [];
  let assigned = [];
  let finished;
  const done = new Promise((resolve) => { finished = resolve; });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    assigned = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b);
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      messages.push({ partition, offset: Number(message.offset), value: message.value.toString() });
      if (messages.length >= count) finished();
    },
  });
  const timer = setTimeout(() => {
    process.stderr.write(`only ${messages.length} of ${count} messages within 30 s\n`);
    process.exit(3);
  }, 30000);
  await done;
  clearTimeout(timer);
  await consumer.disconnect();
  process.stdout.write(JSON.stringify({ messages, assigned }) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
