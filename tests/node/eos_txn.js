// kafkajs transactions: commit, abort, sendOffsets, and a read_committed consumer.
//
//   node eos_txn.js BOOTSTRAP TOPIC GROUP TRANSACTIONAL_ID COUNT
//
// Transaction 1 sends COUNT "commit-i" records and sendOffsets (offset 5 of TOPIC/0 for GROUP-src), then
// commits; transaction 2 sends COUNT "abort-i" records and aborts; transaction 3 sends COUNT "late-i" records
// and commits. A consumer with readUncommitted: false in GROUP then reads TOPIC from the beginning.
// Prints one JSON object: {"consumed": [values in order], "offsets": [[partition, offset]...] of GROUP-src}.
'use strict';

const { client } = require('./client');

const [bootstrap, topic, groupId, transactionalId, countArg] = process.argv.slice(2);
const count = Number(countArg || 10);
const timeoutMs = 30000;

const kafka = client('odradek-tests-eos', bootstrap, 10);

const values = (prefix) => Array.from({ length: count }, (_, i) => ({ value: `${prefix}-${i}` }));

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });

  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();

  let txn = await producer.transaction();
  await txn.send({ topic, messages: values('commit'), acks: -1 });
  await txn.sendOffsets({
    consumerGroupId: `${groupId}-src`,
    topics: [{ topic, partitions: [{ partition: 0, offset: '5' }] }],
  });
  await txn.commit();

  txn = await producer.transaction();
  await txn.send({ topic, messages: values('abort'), acks: -1 });
  await txn.abort();

  txn = await producer.transaction();
  await txn.send({ topic, messages: values('late'), acks: -1 });
  await txn.commit();
  await producer.disconnect();

  const offsets = await admin.fetchOffsets({ groupId: `${groupId}-src`, topics: [topic] });
  await admin.disconnect();

  const consumer = kafka.consumer({ groupId, readUncommitted: false, sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const consumed = [];
  let finish;
  const done = new Promise((resolve) => { finish = resolve; });
  const timer = setTimeout(() => finish('timeout'), timeoutMs);
  await consumer.run({
    eachMessage: async ({ message }) => {
      consumed.push(message.value.toString());
      if (consumed.length >= 2 * count) setTimeout(() => finish('done'), 1000); // catch any extra record
    },
  });
  const why = await done;
  clearTimeout(timer);
  await consumer.disconnect();
  const partOffsets = offsets[0].partitions.map((p) => [p.partition, Number(p.offset)]);
  process.stdout.write(JSON.stringify({ consumed, offsets: partOffsets, end: why }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`eos_txn failed: ${e.stack || e}\n`);
  process.exit(1);
});
