// Prints, for each UTF-8 key read from stdin (one per line), the partition Kafka's Java producer
// picks for it among argv[0] partitions. Run with kafka-clients on the class path:
//   java -cp 'kafka/lib/*' tests/tools/JavaPartition.java 4 < keys
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class JavaPartition {
    public static void main(String[] args) throws IOException {
        int partitions = Integer.parseInt(args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder out = new StringBuilder();
        for (String key = in.readLine(); key != null; key = in.readLine()) {
            byte[] bytes = key.getBytes(StandardCharsets.UTF_8);
            out.append(BuiltInPartitioner.partitionForKey(bytes, partitions)).append('\n');
        }
        System.out.print(out);
    }
}
