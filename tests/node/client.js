// The kafkajs client the test scripts build: warnings and errors to stderr, a bounded retry.
'use strict';

const { Kafka, logLevel } = require('kafkajs');

const stderrLogger = () => ({ label, namespace, log }) => {
  const { message, ...extra } = log;
  process.stderr.write(`[kafkajs ${label}] ${namespace}: ${message} ${JSON.stringify(extra)}\n`);
};

function client(clientId, bootstrap, retries = 5) {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator: stderrLogger,
    retry: { retries, initialRetryTime: 100 },
  });
}

module.exports = { client };
