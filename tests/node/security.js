// kafkajs over TLS and SASL, driven by tests/security/test_connect_other_clients.py.
//
//   node security.js CASE_JSON...
//
// Each argument is one case, a JSON object:
//   {"name", "bootstrap", "protocol": "SSL|SASL_PLAINTEXT|SASL_SSL|PLAINTEXT",
//    "mechanism": "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512", "username", "password",
//    "ca", "cert", "key" (PEM file paths), "topic", "group", "n", "partitions", "timeout_ms"}
//
// A case creates its topic (an existing one is used as it is), produces n records, consumes them back in
// the consumer group, commits and reads the committed offsets back. It prints one JSON line per case:
//   {"name", "ok": true, "produced", "consumed", "values_match", "committed"}
//   {"name", "ok": false, "stage", "error" (kafkajs' error name), "type" (Kafka's error name, when the
//    broker sent one), "code", "message"}
// Every wait is bounded by the case's timeout_ms, so a refused login ends as a failed case, not a hang.
'use strict';

const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const stderrLogger = () => ({ label, namespace, log }) => {
  const { message, ...extra } = log;
  process.stderr.write(`[kafkajs ${label}] ${namespace}: ${message} ${JSON.stringify(extra)}\n`);
};

const DEFAULTS = { n: 10, partitions: 1, timeout_ms: 30000 };

// The kafkajs client options of a case's protocol: TLS and SASL as the listener wants them.
function securityOptions(c) {
  const opts = {};
  if (c.protocol === 'SSL' || c.protocol === 'SASL_SSL') {
    opts.ssl = {
      ca: c.ca ? [fs.readFileSync(c.ca, 'utf8')] : undefined,
      cert: c.cert ? fs.readFileSync(c.cert, 'utf8') : undefined,
      key: c.key ? fs.readFileSync(c.key, 'utf8') : undefined,
    };
  } else if (c.protocol !== 'PLAINTEXT' && c.protocol !== 'SASL_PLAINTEXT') {
    throw new Error(`unknown security protocol ${c.protocol}`);
  }
  if (c.protocol.startsWith('SASL_')) {
    const mechanism = { PLAIN: 'plain', 'SCRAM-SHA-256': 'scram-sha-256', 'SCRAM-SHA-512': 'scram-sha-512' }[
      c.mechanism
    ];
    if (!mechanism) throw new Error(`unknown SASL mechanism ${c.mechanism}`);
    opts.sasl = { mechanism, username: c.username, password: c.password };
  }
  return opts;
}

class StageError extends Error {
  constructor(stage, cause) {
    super(`${stage}: ${cause && cause.message}`);
    this.stage = stage;
    this.cause = cause;
  }
}

async function at(stage, promise) {
  try {
    return await promise;
  } catch (e) {
    throw new StageError(stage, e);
  }
}

function withDeadline(ms, what, promise) {
  let timer;
  const deadline = new Promise((_, reject) => {
    const timeout = Object.assign(new Error(`${what}: no result within ${ms} ms`), { name: 'Timeout' });
    timer = setTimeout(() => reject(timeout), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function run(c) {
  const kafka = new Kafka({
    clientId: 'odradek-tests-kafkajs-security',
    brokers: [c.bootstrap],
    logLevel: logLevel.ERROR,
    logCreator: stderrLogger,
    connectionTimeout: Math.min(c.timeout_ms, 10000),
    authenticationTimeout: Math.min(c.timeout_ms, 10000),
    requestTimeout: c.timeout_ms,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    ...securityOptions(c),
  });
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  // A short fetch wait: disconnecting waits for the fetch in flight.
  const consumer = kafka.consumer({
    groupId: c.group,
    sessionTimeout: 10000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 250,
  });
  try {
    await at('create', admin.connect());
    await at(
      'create',
      admin.createTopics({ topics: [{ topic: c.topic, numPartitions: c.partitions }], waitForLeaders: true }),
    );
    const want = [];
    for (let i = 0; i < c.n; i++) want.push(`${c.name}-${i}`);
    await at('produce', producer.connect());
    const messages = want.map((value, i) => ({ key: String(i), value }));
    await at('produce', producer.send({ topic: c.topic, acks: -1, messages }));

    const got = [];
    const next = {};
    let finished;
    const done = new Promise((resolve) => {
      finished = resolve;
    });
    let crashed;
    const crash = new Promise((_, reject) => {
      crashed = reject;
    });
    // kafkajs restarts the consumer itself after a retriable error; only a final crash ends the case.
    consumer.on(consumer.events.CRASH, (e) => e.payload.restart === false && crashed(e.payload.error));
    await at('consume', consumer.connect());
    await at('consume', consumer.subscribe({ topics: [c.topic], fromBeginning: true }));
    await at(
      'consume',
      consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          got.push(message.value.toString());
          next[partition] = Number(message.offset) + 1;
          if (got.length >= c.n) finished();
        },
      }),
    );
    await at('consume', withDeadline(c.timeout_ms, `${c.n} records`, Promise.race([done, crash])));
    const offsets = Object.entries(next).map(([partition, offset]) => ({
      topic: c.topic,
      partition: Number(partition),
      offset: String(offset),
    }));
    await at('commit', consumer.commitOffsets(offsets));
    const fetched = await at('committed', admin.fetchOffsets({ groupId: c.group, topics: [c.topic] }));
    let committed = 0;
    for (const t of fetched) {
      for (const p of t.partitions) committed += Math.max(0, Number(p.offset));
    }
    const sorted = (xs) => xs.slice().sort();
    return {
      ok: true,
      produced: c.n,
      consumed: got.length,
      values_match: JSON.stringify(sorted(got)) === JSON.stringify(sorted(want)),
      committed,
    };
  } finally {
    await Promise.allSettled([consumer.disconnect(), producer.disconnect(), admin.disconnect()]);
  }
}

// The JSON of a failed case: kafkajs' error name, and Kafka's error name and code when the broker sent one
// (kafkajs keeps it on the error, or on the error that caused it).
function describe(err) {
  const stage = err instanceof StageError ? err.stage : '';
  const cause = err instanceof StageError ? err.cause : err;
  let type = '';
  let code = -1;
  for (let e = cause; e && !type; e = e.originalError || e.cause) {
    if (e.type) type = e.type;
    if (typeof e.code === 'number') code = e.code;
  }
  return {
    ok: false,
    stage,
    error: (cause && cause.name) || String(cause),
    type,
    code,
    message: (cause && cause.message) || String(cause),
  };
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length === 0) {
    process.stderr.write('usage: node security.js CASE_JSON...\n');
    process.exit(2);
  }
  for (const arg of args) {
    const c = { ...DEFAULTS, ...JSON.parse(arg) };
    let out;
    try {
      // Every step has its own bound; this one covers connecting and disconnecting too.
      out = await withDeadline(3 * c.timeout_ms, `case ${c.name}`, run(c));
    } catch (e) {
      out = describe(e);
    }
    process.stdout.write(JSON.stringify({ name: c.name, ...out }) + '\n');
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`security.js failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
