// The kafkajs admin client against one broker: create, list, describe, grow and delete a topic.
//
//   node clients_admin.js BOOTSTRAP TOPIC
//
// Prints one JSON object on stdout with what each call returned (or the error type it threw):
//   {"created", "createdAgain", "badReplication", "listed", "metadata", "grown", "shrink",
//    "configs", "cluster", "deleted", "listedAfterDelete"}
// Metadata is polled (bounded) after create / createPartitions / deleteTopics: Apache Kafka answers
// before its metadata cache reflects the change. Logs go to stderr; exits non-zero on error.
'use strict';

const { Kafka, ConfigResourceTypes, logLevel } = require('kafkajs');

const [bootstrap, topic] = process.argv.slice(2);
if (!bootstrap || !topic) {
  console.error('usage: node clients_admin.js BOOTSTRAP TOPIC');
  process.exit(2);
}

const kafka = new Kafka({
  clientId: 'odradek-tests-clients-admin',
  brokers: [bootstrap],
  logLevel: logLevel.NOTHING,
  retry: { retries: 3, initialRetryTime: 100 },
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last.ok) return last.value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
}

async function errorType(promise) {
  try {
    return { ok: await promise };
  } catch (e) {
    const inner = e.errors && e.errors.length ? e.errors[0] : e;
    return { error: inner.type || e.type || e.name, message: String(inner.message || e.message) };
  }
}

async function partitionsOf(admin, name) {
  const { topics } = await admin.fetchTopicMetadata({ topics: [name] });
  return topics[0].partitions
    .map(({ partitionId, leader, replicas, isr, partitionErrorCode }) => ({
      partitionId,
      leader,
      replicas,
      isr,
      partitionErrorCode,
    }))
    .sort((a, b) => a.partitionId - b.partitionId);
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const out = {};
  try {
    out.created = await admin.createTopics({
      topics: [
        {
          topic,
          numPartitions: 2,
          configEntries: [
            { name: 'retention.ms', value: '3600000' },
            { name: 'max.message.bytes', value: '200000' },
          ],
        },
      ],
      waitForLeaders: true,
    });
    out.createdAgain = await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    out.badReplication = await errorType(
      admin.createTopics({ topics: [{ topic: `${topic}-rf3`, numPartitions: 1, replicationFactor: 3 }] }),
    );
    out.listed = (await admin.listTopics()).includes(topic);
    out.metadata = await until('2 partitions with leaders', async () => {
      const ps = await partitionsOf(admin, topic);
      return { ok: ps.length === 2 && ps.every((p) => p.leader >= 0), value: ps };
    });

    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
    out.grown = await until('4 partitions', async () => {
      const ps = await partitionsOf(admin, topic);
      return { ok: ps.length === 4 && ps.every((p) => p.leader >= 0), value: ps };
    });
    out.shrink = await errorType(admin.createPartitions({ topicPartitions: [{ topic, count: 1 }] }));

    const { resources } = await admin.describeConfigs({
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configNames: ['retention.ms', 'max.message.bytes', 'cleanup.policy'],
        },
      ],
      includeSynonyms: false,
    });
    out.configs = resources.map((r) => ({
      errorCode: r.errorCode,
      resourceName: r.resourceName,
      entries: Object.fromEntries(
        r.configEntries.map((e) => [e.configName, { value: e.configValue, isDefault: e.isDefault }]),
      ),
    }));

    out.cluster = await admin.describeCluster();

    out.deleted = await admin.deleteTopics({ topics: [topic], timeout: 10000 });
    out.listedAfterDelete = await until('topic gone from listTopics', async () => {
      const names = await admin.listTopics();
      return { ok: !names.includes(topic), value: names.includes(topic) };
    });
  } finally {
    await admin.disconnect();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`clients_admin.js failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
