package odradek.admin;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;

/**
 * The Java AdminClient's config and record APIs against one broker: incrementalAlterConfigs (topic,
 * group, bad input), describeConfigs, deleteRecords, describeLogDirs and electLeaders. Prints one JSON
 * object of outcomes, the same on Odradek and on Apache Kafka.
 *
 * <p>Usage: AdminScenario BOOTSTRAP TOPIC GROUP (the topic exists with one partition of 10 records).
 */
public final class AdminScenario {
  private AdminScenario() {}

  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    String topic = args[1];
    String group = args[2];
    Map<String, Object> out = new TreeMap<>();
    try (Admin admin = Admin.create(props)) {
      ConfigResource topicResource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      admin
          .incrementalAlterConfigs(
              Map.of(
                  topicResource,
                  List.of(
                      op("retention.ms", "3600000", AlterConfigOp.OpType.SET),
                      op("cleanup.policy", "compact", AlterConfigOp.OpType.APPEND))))
          .all()
          .get();
      Config config = admin.describeConfigs(List.of(topicResource)).all().get().get(topicResource);
      out.put("topic_config_count", config.entries().size());
      ConfigEntry retention = config.get("retention.ms");
      out.put("retention_ms", retention.value() + " " + retention.source());
      out.put("cleanup_policy", config.get("cleanup.policy").value());
      out.put("segment_bytes_source", config.get("segment.bytes").source().toString());

      out.put(
          "unknown_config",
          failure(
              () ->
                  admin
                      .incrementalAlterConfigs(
                          Map.of(
                              topicResource,
                              List.of(op("no.such.config", "1", AlterConfigOp.OpType.SET))))
                      .all()
                      .get()));
      out.put(
          "bad_value",
          failure(
              () ->
                  admin
                      .incrementalAlterConfigs(
                          Map.of(
                              topicResource,
                              List.of(op("retention.ms", "soon", AlterConfigOp.OpType.SET))))
                      .all()
                      .get()));
      ConfigResource missing = new ConfigResource(ConfigResource.Type.TOPIC, topic + "-missing");
      out.put(
          "unknown_topic",
          failure(
              () ->
                  admin
                      .incrementalAlterConfigs(
                          Map.of(missing, List.of(op("retention.ms", "1000", AlterConfigOp.OpType.SET))))
                      .all()
                      .get()));

      ConfigResource groupResource = new ConfigResource(ConfigResource.Type.GROUP, group);
      admin
          .incrementalAlterConfigs(
              Map.of(
                  groupResource,
                  List.of(op("consumer.heartbeat.interval.ms", "6000", AlterConfigOp.OpType.SET))))
          .all()
          .get();
      Config groupConfig = admin.describeConfigs(List.of(groupResource)).all().get().get(groupResource);
      ConfigEntry heartbeat = groupConfig.get("consumer.heartbeat.interval.ms");
      out.put("group_heartbeat", heartbeat.value() + " " + heartbeat.source());
      out.put("group_session", groupConfig.get("consumer.session.timeout.ms").value());

      TopicPartition tp = new TopicPartition(topic, 0);
      long low =
          admin
              .deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4)))
              .lowWatermarks()
              .get(tp)
              .get()
              .lowWatermark();
      out.put("low_watermark", low);
      out.put(
          "delete_beyond_end",
          failure(
              () ->
                  admin
                      .deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(1000)))
                      .lowWatermarks()
                      .get(tp)
                      .get()));

      int node = admin.describeCluster().nodes().get().iterator().next().id();
      Map<String, LogDirDescription> dirs =
          admin.describeLogDirs(List.of(node)).allDescriptions().get().get(node);
      out.put("log_dirs", dirs.size());
      List<String> replicas = new ArrayList<>();
      for (LogDirDescription d : dirs.values()) {
        ReplicaInfo info = d.replicaInfos().get(tp);
        if (info != null) {
          replicas.add("lag=" + info.offsetLag() + " future=" + info.isFuture() + " sized=" + (info.size() > 0));
        }
        out.put("total_bytes_known", d.totalBytes().isPresent() && d.usableBytes().isPresent());
      }
      out.put("replica", String.join(",", replicas));

      Map<TopicPartition, Optional<Throwable>> elected =
          admin.electLeaders(ElectionType.PREFERRED, Set.of(tp)).partitions().get();
      out.put("elect_preferred", elected.get(tp).map(t -> t.getClass().getSimpleName()).orElse("ok"));
    }
    System.out.println(toJson(out));
  }

  private static AlterConfigOp op(String name, String value, AlterConfigOp.OpType type) {
    return new AlterConfigOp(new ConfigEntry(name, value), type);
  }

  interface Action {
    Object run() throws Exception;
  }

  private static String failure(Action action) {
    try {
      action.run();
      return "ok";
    } catch (ExecutionException e) {
      return e.getCause().getClass().getSimpleName();
    } catch (Exception e) {
      return e.getClass().getSimpleName();
    }
  }

  private static String toJson(Map<String, Object> map) {
    StringBuilder sb = new StringBuilder("{");
    for (Map.Entry<String, Object> e : map.entrySet()) {
      if (sb.length() > 1) {
        sb.append(',');
      }
      sb.append('"').append(e.getKey()).append("\":");
      Object v = e.getValue();
      if (v instanceof Number || v instanceof Boolean) {
        sb.append(v);
      } else {
        sb.append('"').append(String.valueOf(v).replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
      }
    }
    return sb.append('}').toString();
  }

}
