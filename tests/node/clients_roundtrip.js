// Produce keyed messages with headers and null keys / values with kafkajs, one codec, for a Python test to
// read back (with confluent-kafka, by assignment: the kafkajs consumer only works through a consumer
// group; consuming with kafkajs is left for the consumer-group issue).
//
//   node clients_roundtrip.js BOOTSTRAP TOPIC CODEC COUNT PARTITIONS
//
// CODEC is none or gzip: the codecs built into kafkajs. snappy, lz4 and zstd need codec plugin packages
// (kafkajs-snappy, kafkajs-lz4, @kafkajs/zstd) that this suite does not install, so they are not tested.
//
// Message i goes to partition i % PARTITIONS. Prints one JSON object on stdout:
//   {"t0": ms, "t1": ms, "messages": [{"partition", "offset", "key", "value", "headers": [[k, v]...]}...]}
// with key/value/header values as hex strings or null, headers in the order kafkajs encodes them, and
// offsets computed from the acknowledged base offset of each partition's batch.
'use strict';

const { CompressionTypes } = require('kafkajs');
const { client } = require('./client');

const [bootstrap, topic, codec, countArg, partitionsArg] = process.argv.slice(2);
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP };
if (!bootstrap || !topic || !(codec in CODECS)) {
  console.error('usage: node clients_roundtrip.js BOOTSTRAP TOPIC none|gzip COUNT PARTITIONS');
  process.exit(2);
}
const count = Number(countArg || 50);
const partitions = Number(partitionsArg || 1);

const kafka = client('odradek-tests-clients-roundtrip', bootstrap);

const hex = (v) => (v == null ? null : Buffer.from(v).toString('hex'));

function message(i) {
  const key = i % 7 === 3 ? null : `js-key-${i}`;
  const value = i % 11 === 5 ? null : Buffer.concat([Buffer.from(`js-value-${i}-`), Buffer.from([0, 1, 254, 255])]);
  const headers = {};
  const flat = []; // what kafkajs will write, in order (object keys in insertion order, arrays flattened)
  if (i % 3 !== 0) {
    headers.trace = `t${i}`;
    headers.dup = ['first', 'second'];
    headers.bin = Buffer.from([0, 255]);
    flat.push(['trace', hex(`t${i}`)], ['dup', hex('first')], ['dup', hex('second')], ['bin', '00ff']);
    if (i % 4 === 1) {
      // A null header value is not possible: kafkajs 2.2.4's sizeOfHeaders calls Buffer.byteLength(null)
      // and throws, although its encoder would write -1. An empty value is the closest it can send.
      headers.empty = '';
      flat.push(['empty', '']);
    }
  }
  return { partition: i % partitions, key, value, headers, flat };
}

async function main() {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const msgs = [];
  for (let i = 0; i < count; i++) msgs.push(message(i));
  const t0 = Date.now();
  const results = await producer.send({
    topic,
    acks: -1,
    compression: CODECS[codec],
    messages: msgs.map(({ partition, key, value, headers }) => ({ partition, key, value, headers })),
  });
  const t1 = Date.now();
  await producer.disconnect();

  const base = {};
  for (const r of results) {
    if (r.errorCode !== 0) throw new Error(`partition ${r.partition}: error ${r.errorCode}`);
    base[r.partition] = Number(r.baseOffset);
  }
  const next = { ...base };
  const messages = msgs.map((m) => ({
    partition: m.partition,
    offset: next[m.partition]++,
    key: hex(m.key),
    value: hex(m.value),
    headers: m.flat,
  }));
  process.stdout.write(JSON.stringify({ t0, t1, messages }) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`clients_roundtrip.js failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
