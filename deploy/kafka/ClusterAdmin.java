// Two questions and one order for the 3-node cluster, through the Admin API of the
// broker's own kafka-clients jar (no kafka-tools to resolve). Run by kafka.sh as a
// single-file source program:
//   java -cp "$libs/*" ClusterAdmin.java controller BOOTSTRAP
//       prints the node id of the active controller (the KRaft quorum's leader)
//   java -cp "$libs/*" ClusterAdmin.java elect-preferred BOOTSTRAP
//       a preferred leader election on every partition; prints how many moved

import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ElectionNotNeededException;

public class ClusterAdmin {
  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: ClusterAdmin controller|elect-preferred BOOTSTRAP");
      System.exit(2);
    }
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    try (Admin admin = Admin.create(props)) {
      switch (args[0]) {
        case "controller" -> System.out.println(
            admin.describeMetadataQuorum().quorumInfo().get().leaderId());
        case "elect-preferred" -> {
          // null: every partition of the cluster.
          Map<TopicPartition, Optional<Throwable>> result =
              admin.electLeaders(ElectionType.PREFERRED, null).partitions().get();
          int moved = 0;
          for (Map.Entry<TopicPartition, Optional<Throwable>> e : result.entrySet()) {
            Optional<Throwable> error = e.getValue();
            if (error.isEmpty()) {
              moved++;
            } else if (!(error.get() instanceof ElectionNotNeededException)) {
              System.err.println(e.getKey() + ": " + error.get());
            }
          }
          System.out.println(moved);
        }
        default -> {
          System.err.println("unknown command " + args[0]);
          System.exit(2);
        }
      }
    } catch (ExecutionException e) {
      System.err.println(e.getCause());
      System.exit(1);
    }
  }
}
