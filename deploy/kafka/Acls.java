// Creates Kafka ACLs from a spec file through the Admin API of the broker's own
// kafka-clients jar, so no extra tooling (kafka-tools) has to be resolved. Run by
// kafka.sh as a single-file source program:
//   java -cp "$libs/*" Acls.java ADMIN_CLIENT_PROPERTIES SPEC_FILE
// Each spec line: PRINCIPAL OPERATION RESOURCE_TYPE PATTERN_TYPE NAME, e.g.
//   User:ingest WRITE TOPIC LITERAL leads.accepted
// (deploy/kafka/acls.py writes these from leadloop's topic registry). Every entry is an
// ALLOW from any host; '#' starts a comment. Creating an entry that exists is a no-op.

import java.io.FileInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class Acls {
  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: Acls ADMIN_CLIENT_PROPERTIES SPEC_FILE");
      System.exit(2);
    }
    Properties props = new Properties();
    try (FileInputStream in = new FileInputStream(args[0])) {
      props.load(in);
    }
    List<AclBinding> bindings = new ArrayList<>();
    for (String raw : Files.readAllLines(Path.of(args[1]))) {
      String line = raw.strip();
      if (line.isEmpty() || line.startsWith("#")) continue;
      String[] f = line.split("\\s+");
      if (f.length != 5) throw new IllegalArgumentException("bad ACL spec line: " + line);
      bindings.add(
          new AclBinding(
              new ResourcePattern(ResourceType.fromString(f[2]), f[4], PatternType.fromString(f[3])),
              new AccessControlEntry(
                  f[0], "*", AclOperation.fromString(f[1]), AclPermissionType.ALLOW)));
    }
    for (AclBinding b : bindings) {
      if (b.isUnknown()) throw new IllegalArgumentException("unknown value in " + b);
    }
    try (Admin admin = Admin.create(props)) {
      admin.createAcls(bindings).all().get();
    }
    System.out.println("kafka: " + bindings.size() + " ACL entries in place");
  }
}
