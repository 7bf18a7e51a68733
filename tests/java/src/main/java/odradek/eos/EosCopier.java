package odradek.eos;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The "Exactly-Once with Consumer + Producer" loop of delivery-guarantees.md, with only what the
 * snippet leaves out: bootstrap, serializers, group id, a subscription, a processMessage body, and a
 * stop after N committed records (or a deadline).
 *
 * <pre>java -cp target/eos-copier.jar:target/deps/* odradek.eos.EosCopier BOOTSTRAP INPUT OUTPUT GROUP TXN_ID N</pre>
 *
 * Prints one JSON line at the end: {"committed": n, "aborted": transactions aborted}.
 */
public final class EosCopier {
    static String processMessage(String value) {
        return "copied:" + value;
    }

    public static void main(String[] args) {
        String bootstrap = args[0], input = args[1], output = args[2], group = args[3], txnId = args[4];
        long expected = Long.parseLong(args[5]);
        long deadline = System.currentTimeMillis() + 60_000;

        Properties consumerProps = new Properties();
        consumerProps.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        consumerProps.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        consumerProps.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        consumerProps.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        consumerProps.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        consumerProps.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        consumerProps.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");

        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps);
        consumer.subscribe(List.of(input));

        Properties producerProps = new Properties();
        producerProps.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        producerProps.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        producerProps.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        producerProps.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        producerProps.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);

        KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps);
        producer.initTransactions();

        long committed = 0;
        int aborted = 0;
        while (committed < expected && System.currentTimeMillis() < deadline) {
            ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(100));

            if (!records.isEmpty()) {
                producer.beginTransaction();

                try {
                    for (ConsumerRecord<String, String> record : records) {
                        // Process message
                        String result = processMessage(record.value());

                        // Send output
                        producer.send(new ProducerRecord<>(output, result));
                    }

                    // Commit consumer offsets in same transaction
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    for (ConsumerRecord<String, String> record : records) {
                        offsets.put(
                            new TopicPartition(record.topic(), record.partition()),
                            new OffsetAndMetadata(record.offset() + 1)
                        );
                    }
                    producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());

                    // Commit transaction
                    producer.commitTransaction();
                    committed += records.count();
                } catch (Exception e) {
                    System.err.println("transaction failed: " + e);
                    producer.abortTransaction();
                    aborted++;
                }
            }
        }
        producer.close(Duration.ofSeconds(10));
        consumer.close(Duration.ofSeconds(10));
        System.out.println("{\"committed\": " + committed + ", \"aborted\": " + aborted + "}");
        System.exit(committed == expected ? 0 : 1);
    }
}
