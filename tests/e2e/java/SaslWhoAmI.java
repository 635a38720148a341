import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ClientInfo;

/** Connect with the JAAS Client section, wait for SaslAuthenticated, print whoAmI as scheme=user lines. */
public class SaslWhoAmI {
    public static void main(String[] args) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(args[0], 10000, e -> {
            Watcher.Event.KeeperState s = e.getState();
            System.out.println("state=" + s);
            if (s == Watcher.Event.KeeperState.SaslAuthenticated || s == Watcher.Event.KeeperState.AuthFailed) {
                done.countDown();
            }
        });
        if (!done.await(20, TimeUnit.SECONDS)) {
            System.out.println("timeout");
        }
        try {
            for (ClientInfo info : zk.whoAmI()) {
                System.out.println(info.getAuthScheme() + "=" + info.getUser());
            }
        } catch (Exception e) {
            System.out.println("error=" + e.getClass().getSimpleName());
        }
        zk.close();
    }
}
