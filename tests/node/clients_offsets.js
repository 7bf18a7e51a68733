// ListOffsets through the kafkajs admin client: watermarks and timestamp lookups for one topic.
//
//   node clients_offsets.js BOOTSTRAP TOPIC [TIMESTAMP...]
//
// Prints one JSON object on stdout:
//   {"offsets": [{"partition", "offset", "low", "high"}...],          admin.fetchTopicOffsets
//    "byTimestamp": {"<ts>": [{"partition", "offset"}...], ...}}       admin.fetchTopicOffsetsByTimestamp
// (kafkajs answers a timestamp past the last record with the high watermark, not -1.)
// Offsets are numbers. Logs go to stderr; exits non-zero on error.
'use strict';

const { client } = require('./client');

const [bootstrap, topic, ...timestamps] = process.argv.slice(2);
if (!bootstrap || !topic) {
  console.error('usage: node clients_offsets.js BOOTSTRAP TOPIC [TIMESTAMP...]');
  process.exit(2);
}

const kafka = client('odradek-tests-offsets', bootstrap);

const byPartition = (a, b) => a.partition - b.partition;

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = (await admin.fetchTopicOffsets(topic))
      .map(({ partition, offset, low, high }) => ({
        partition,
        offset: Number(offset),
        low: Number(low),
        high: Number(high),
      }))
      .sort(byPartition);
    const byTimestamp = {};
    for (const ts of timestamps) {
      byTimestamp[ts] = (await admin.fetchTopicOffsetsByTimestamp(topic, Number(ts)))
        .map(({ partition, offset }) => ({ partition, offset: Number(offset) }))
        .sort(byPartition);
    }
    process.stdout.write(JSON.stringify({ offsets, byTimestamp }) + '\n');
  } finally {
    await admin.disconnect();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`clients_offsets.js failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
