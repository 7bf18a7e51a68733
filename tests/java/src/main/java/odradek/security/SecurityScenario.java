package odradek.security;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.ApiException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java client (kafka-clients 4.4) over TLS and SASL, driven by
 * tests/security/test_connect_other_clients.py.
 *
 * <pre>SecurityScenario CASE_JSON...</pre>
 *
 * <p>Each argument is one case, a flat JSON object: name, bootstrap, protocol (SSL, SASL_PLAINTEXT,
 * SASL_SSL, PLAINTEXT), mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), username, password, ca, cert,
 * key (PEM file paths), topic, group, n, partitions, timeout_ms. A case creates its topic (an existing
 * one is used as it is), produces n records, consumes them back in the consumer group, commits and
 * reads the committed offsets back. One JSON line per case:
 *
 * <pre>
 * {"name", "ok": true, "produced", "consumed", "values_match", "committed"}
 * {"name", "ok": false, "stage", "error" (Kafka's error name), "code", "exception", "message"}
 * </pre>
 *
 * <p>Every wait is bounded by the case's timeout_ms, so a refused login ends as a failed case, not a
 * hang. The client certificate goes through a PEM keystore file (key and chain), as users configure it.
 */
public final class SecurityScenario {
  private SecurityScenario() {}

  /** A failed step of a case: which step, and the client's exception. */
  static final class StageException extends Exception {
    final String stage;

    StageException(String stage, Throwable cause) {
      super(stage + ": " + cause, cause);
      this.stage = stage;
    }
  }

  interface Step<T> {
    T run() throws Exception;
  }

  static <T> T at(String stage, Step<T> step) throws StageException {
    try {
      return step.run();
    } catch (ExecutionException e) {
      throw new StageException(stage, e.getCause());
    } catch (Exception e) {
      throw new StageException(stage, e);
    }
  }

  public static void main(String[] args) {
    if (args.length == 0) {
      System.err.println("usage: SecurityScenario CASE_JSON...");
      System.exit(2);
    }
    for (String arg : args) {
      Map<String, Object> c = new LinkedHashMap<>();
      c.put("n", 10L);
      c.put("partitions", 1L);
      c.put("timeout_ms", 30000L);
      c.putAll(Json.parseObject(arg));
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("name", c.get("name"));
      try {
        out.putAll(run(c));
        out.put("ok", true);
      } catch (StageException e) {
        out.putAll(describe(e));
      }
      System.out.println(Json.write(out));
      System.out.flush();
    }
    System.exit(0);
  }

  static String str(Map<String, Object> c, String key) {
    Object v = c.get(key);
    return v == null ? "" : v.toString();
  }

  static int num(Map<String, Object> c, String key) {
    return ((Number) c.get(key)).intValue();
  }

  /** The client settings of a case's protocol: TLS and SASL as the listener wants them. */
  static Properties securityProps(Map<String, Object> c, Path scratch) throws IOException {
    Properties props = new Properties();
    String protocol = str(c, "protocol");
    props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, str(c, "bootstrap"));
    props.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, protocol);
    int timeoutMs = num(c, "timeout_ms");
    props.put(CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, String.valueOf(timeoutMs));
    props.put(CommonClientConfigs.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(timeoutMs));
    props.put(CommonClientConfigs.SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS_CONFIG, "5000");
    props.put(CommonClientConfigs.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");
    if (protocol.endsWith("SSL")) {
      if (!str(c, "ca").isEmpty()) {
        props.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
        props.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, str(c, "ca"));
      }
      if (!str(c, "cert").isEmpty()) {
        Path keystore = scratch.resolve("keystore.pem");
        String pem =
            Files.readString(Path.of(str(c, "key"))) + "\n" + Files.readString(Path.of(str(c, "cert")));
        Files.writeString(keystore, pem, StandardCharsets.US_ASCII);
        props.put(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM");
        props.put(SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG, keystore.toString());
      }
    }
    if (protocol.startsWith("SASL_")) {
      String mechanism = str(c, "mechanism");
      String module =
          mechanism.equals("PLAIN")
              ? "org.apache.kafka.common.security.plain.PlainLoginModule"
              : "org.apache.kafka.common.security.scram.ScramLoginModule";
      props.put(SaslConfigs.SASL_MECHANISM, mechanism);
      props.put(
          SaslConfigs.SASL_JAAS_CONFIG,
          module
              + " required username=\""
              + jaasQuote(str(c, "username"))
              + "\" password=\""
              + jaasQuote(str(c, "password"))
              + "\";");
    }
    return props;
  }

  static String jaasQuote(String s) {
    return s.replace("\\", "\\\\").replace("\"", "\\\"");
  }

  static Map<String, Object> run(Map<String, Object> c) throws StageException {
    Path scratch = at("config", () -> Files.createTempDirectory("odradek-security-"));
    try {
      return roundTrip(c, at("config", () -> securityProps(c, scratch)));
    } finally {
      try (var files = Files.list(scratch)) {
        files.forEach(f -> f.toFile().delete());
        Files.delete(scratch);
      } catch (IOException e) {
        // a leftover temporary file is harmless
      }
    }
  }

  static Map<String, Object> roundTrip(Map<String, Object> c, Properties base) throws StageException {
    String topic = str(c, "topic");
    String group = str(c, "group");
    int n = num(c, "n");
    int partitions = num(c, "partitions");
    long timeoutMs = num(c, "timeout_ms");
    long deadline = System.currentTimeMillis() + timeoutMs;
    Map<String, Object> out = new LinkedHashMap<>();
    try (Admin admin = Admin.create(base)) {
      at(
          "create",
          () -> {
            try {
              return admin
                  .createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                  .all()
                  .get(timeoutMs, TimeUnit.MILLISECONDS);
            } catch (ExecutionException e) {
              if (e.getCause() instanceof TopicExistsException) {
                return null;
              }
              throw e;
            }
          });

      List<String> want = new ArrayList<>();
      Properties pp = new Properties();
      pp.putAll(base);
      pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
      pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
      pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, String.valueOf(timeoutMs));
      pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, String.valueOf(timeoutMs));
      pp.put(ProducerConfig.LINGER_MS_CONFIG, "0");
      pp.remove(CommonClientConfigs.DEFAULT_API_TIMEOUT_MS_CONFIG);
      try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
        List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
        for (int i = 0; i < n; i++) {
          String value = str(c, "name") + "-" + i;
          want.add(value);
          String key = String.valueOf(i);
          sent.add(at("produce", () -> producer.send(new ProducerRecord<>(topic, key, value))));
        }
        for (var f : sent) {
          at("produce", () -> f.get(timeoutMs, TimeUnit.MILLISECONDS));
        }
      }

      Properties cp = new Properties();
      cp.putAll(base);
      cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
      cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
      cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
      cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
      List<String> got = new ArrayList<>();
      try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
        consumer.subscribe(List.of(topic));
        while (got.size() < n && System.currentTimeMillis() < deadline) {
          for (ConsumerRecord<String, String> r :
              at("consume", () -> consumer.poll(Duration.ofMillis(500)))) {
            got.add(r.value());
          }
        }
        if (got.size() < n) {
          throw new StageException(
              "consume", new java.util.concurrent.TimeoutException(got.size() + " of " + n + " records"));
        }
        at(
            "commit",
            () -> {
              consumer.commitSync(Duration.ofMillis(timeoutMs));
              return null;
            });
      }
      Map<TopicPartition, OffsetAndMetadata> offsets =
          at(
              "committed",
              () ->
                  admin
                      .listConsumerGroupOffsets(group)
                      .partitionsToOffsetAndMetadata()
                      .get(timeoutMs, TimeUnit.MILLISECONDS));
      long committed = 0;
      for (OffsetAndMetadata o : offsets.values()) {
        if (o != null) {
          committed += o.offset();
        }
      }
      Collections.sort(got);
      Collections.sort(want);
      out.put("produced", n);
      out.put("consumed", got.size());
      out.put("values_match", got.equals(want));
      out.put("committed", committed);
    }
    return out;
  }

  /**
   * The JSON of a failed case: the stage, and Kafka's error name and code for the first ApiException
   * in the cause chain (SaslAuthenticationException is SASL_AUTHENTICATION_FAILED, 58); else the
   * exception's class.
   */
  static Map<String, Object> describe(StageException e) {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("ok", false);
    out.put("stage", e.stage);
    Throwable cause = e.getCause();
    Throwable api = cause;
    while (api != null && !(api instanceof ApiException)) {
      api = api.getCause();
    }
    // Errors.forException falls back on a superclass's code (SslAuthenticationException would read as
    // INVALID_CONFIG): only an exception of the error's own class names a Kafka error.
    Errors error = api == null ? Errors.UNKNOWN_SERVER_ERROR : Errors.forException(api);
    boolean known =
        api != null && error.exception() != null && error.exception().getClass() == api.getClass();
    out.put("error", known ? error.name() : (api != null ? api : cause).getClass().getSimpleName());
    out.put("code", known ? (long) error.code() : -1L);
    out.put("exception", cause.getClass().getSimpleName());
    out.put("message", String.valueOf(cause.getMessage()));
    return out;
  }

  /** Just enough JSON for flat objects of strings, numbers, booleans and null. */
  static final class Json {
    private final String s;
    private int i;

    private Json(String s) {
      this.s = s;
    }

    static Map<String, Object> parseObject(String text) {
      Json p = new Json(text);
      Map<String, Object> out = new LinkedHashMap<>();
      p.expect('{');
      if (p.peek() == '}') {
        p.i++;
        return out;
      }
      while (true) {
        String key = p.string();
        p.expect(':');
        out.put(key, p.value());
        char next = p.next();
        if (next == '}') {
          break;
        }
        if (next != ',') {
          throw new IllegalArgumentException("expected , or } at " + p.i + " in " + text);
        }
      }
      if (p.peek() != 0) {
        throw new IllegalArgumentException("trailing characters at " + p.i + " in " + text);
      }
      return out;
    }

    private char peek() {
      while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
        i++;
      }
      return i < s.length() ? s.charAt(i) : 0;
    }

    private char next() {
      char c = peek();
      if (c == 0) {
        throw new IllegalArgumentException("unexpected end of " + s);
      }
      i++;
      return c;
    }

    private void expect(char c) {
      if (next() != c) {
        throw new IllegalArgumentException("expected " + c + " at " + (i - 1) + " in " + s);
      }
    }

    private Object value() {
      char c = peek();
      if (c == '"') {
        return string();
      }
      int start = i;
      while (i < s.length() && ",}] \t\r\n".indexOf(s.charAt(i)) < 0) {
        i++;
      }
      String word = s.substring(start, i);
      switch (word) {
        case "true":
          return true;
        case "false":
          return false;
        case "null":
          return null;
        default:
          return word.contains(".") || word.contains("e") ? Double.parseDouble(word) : Long.parseLong(word);
      }
    }

    private String string() {
      expect('"');
      StringBuilder sb = new StringBuilder();
      while (true) {
        if (i >= s.length()) {
          throw new IllegalArgumentException("unterminated string in " + s);
        }
        char c = s.charAt(i++);
        if (c == '"') {
          return sb.toString();
        }
        if (c != '\\') {
          sb.append(c);
          continue;
        }
        char e = s.charAt(i++);
        switch (e) {
          case 'n' -> sb.append('\n');
          case 't' -> sb.append('\t');
          case 'r' -> sb.append('\r');
          case 'b' -> sb.append('\b');
          case 'f' -> sb.append('\f');
          case 'u' -> {
            sb.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
            i += 4;
          }
          default -> sb.append(e);
        }
      }
    }

    static String write(Map<String, Object> map) {
      StringBuilder sb = new StringBuilder("{");
      for (Map.Entry<String, Object> e : map.entrySet()) {
        if (sb.length() > 1) {
          sb.append(',');
        }
        quote(sb, e.getKey());
        sb.append(':');
        Object v = e.getValue();
        if (v == null) {
          sb.append("null");
        } else if (v instanceof Number || v instanceof Boolean) {
          sb.append(v);
        } else {
          quote(sb, v.toString());
        }
      }
      return sb.append('}').toString();
    }

    private static void quote(StringBuilder sb, String s) {
      sb.append('"');
      for (char c : s.toCharArray()) {
        switch (c) {
          case '"' -> sb.append("\\\"");
          case '\\' -> sb.append("\\\\");
          case '\n' -> sb.append("\\n");
          case '\r' -> sb.append("\\r");
          case '\t' -> sb.append("\\t");
          default -> {
            if (c < 0x20) {
              sb.append(String.format("\\u%04x", (int) c));
            } else {
              sb.append(c);
            }
          }
        }
      }
      sb.append('"');
    }
  }
}
