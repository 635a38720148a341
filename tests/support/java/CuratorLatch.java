import java.io.BufferedReader;
import java.io.InputStreamReader;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.retry.RetryForever;

/**
 * One participant of Curator's LeaderLatch recipe, for tests: CuratorLatch CONNECT_STRING PATH ID
 * SESSION_TIMEOUT_MS. Prints one line per change, as it happens: "STATE <ConnectionState>" for the
 * client's connection, "LEADER" and "NOT_LEADER" for the latch. Runs until its stdin closes.
 */
public final class CuratorLatch {
    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        int sessionTimeout = Integer.parseInt(args[3]);
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(args[0])
                .sessionTimeoutMs(sessionTimeout)
                .connectionTimeoutMs(Math.max(1000, sessionTimeout / 2))
                .retryPolicy(new RetryForever(100))
                .build();
        client.getConnectionStateListenable().addListener((c, state) -> say("STATE " + state));
        client.start();
        LeaderLatch latch = new LeaderLatch(client, args[1], args[2]);
        latch.addListener(new LeaderLatchListener() {
            @Override
            public void isLeader() {
                say("LEADER");
            }

            @Override
            public void notLeader() {
                say("NOT_LEADER");
            }
        });
        latch.start();
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in));
        while (stdin.readLine() != null) {
            // nothing to do: the test closes stdin to stop us
        }
        latch.close();
        client.close();
    }
}
