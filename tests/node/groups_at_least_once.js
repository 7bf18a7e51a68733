// The "At-Least-Once Delivery" TypeScript example of delivery-guarantees.md, as written, in plain Node.
//
//   node groups_at_least_once.js BOOTSTRAP TOPIC GROUP COUNT
//
// The producer and consumer settings are the snippet's, unchanged: an idempotent producer sending with
// acks -1, a consumer with autoCommit false that commits (offset + 1) after processing each message.
// Added, as the snippet leaves them out: the Kafka client object, the consumer object and its
// subscription, the orders (COUNT of them, one send each), a processMessageIdempotently body
// (de-duplication by order id, as in the document's "Deduplication by Message ID" strategy, keyed on
// the order id the value carries), and a way to stop (after the batch in which the last order was processed and committed).
//
// Prints JSON lines on stdout: {"sent": id} per acknowledged send, {"processed": id} per order
// processed, {"duplicate": id} per order seen again, and finally {"done": true}. Logs go to stderr;
// exits 1 on any error (it is printed as {"error": message, "name": name, "type": type}).
'use strict';

const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, groupId, countArg] = process.argv.slice(2);
if (!bootstrap || !topic || !groupId) {
  console.error('usage: node groups_at_least_once.js BOOTSTRAP TOPIC GROUP COUNT');
  process.exit(2);
}
const count = Number(countArg || 20);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const kafka = new Kafka({
  clientId: 'odradek-tests-at-least-once',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  logCreator: () => ({ label, namespace, log }) => {
    const { message, ...extra } = log;
    process.stderr.write(`[kafkajs ${label}] ${namespace}: ${message} ${JSON.stringify(extra)}\n`);
  },
});
const consumer = kafka.consumer({ groupId });

const processedIds = new Set();
let finished;
const allProcessed = new Promise((resolve) => { finished = resolve; });
// The way to stop: once a batch has been fully handled (every eachMessage, commit included, has
// resolved) and every order has been processed.
consumer.on(consumer.events.END_BATCH_PROCESS, () => {
  if (processedIds.size === count) finished();
});

async function processMessageIdempotently(message) {
  const order = JSON.parse(message.value.toString());
  if (processedIds.has(order.id)) {
    out({ duplicate: order.id });
    return;
  }
  processedIds.add(order.id);
  out({ processed: order.id });
}

async function main() {
  // Producer: acks=all
  const producer = kafka.producer({
    idempotent: true,  // Prevents duplicates from retries
  });
  await producer.connect();
  for (let i = 0; i < count; i++) {
    const order = { id: `order-${i}`, amount: i };
    await producer.send({
      topic,
      acks: -1,  // Wait for all replicas
      messages: [{ value: JSON.stringify(order) }],
    });
    out({ sent: order.id });
  }
  await producer.disconnect();

  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });

  // Consumer: manual commit after processing
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      try {
        // Process message idempotently
        await processMessageIdempotently(message);

        // Commit offset only after successful processing
        await consumer.commitOffsets([{
          topic,
          partition,
          offset: (parseInt(message.offset) + 1).toString(),
        }]);
      } catch (error) {
        // Don't commit - message will be reprocessed
        console.error('Processing failed, will retry:', error);
      }
    },
  });

  await allProcessed;
  await consumer.disconnect();
  out({ done: true });
}

main().then(
  () => process.exit(0),
  async (err) => {
    out({ error: String(err && err.message), name: err && err.name, type: err && err.type });
    await consumer.disconnect().catch(() => {});
    process.exit(1);
  },
);
