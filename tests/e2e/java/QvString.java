// Prints QuorumPeerConfig.parse(path).getQuorumVerifier().toString() for each zoo.cfg given,
// each followed by a NUL byte ("ERROR <exception>" when Apache refuses the file). The oracle for
// zkserver.quorum.verifier (tests/e2e/test_verifier_apache.py).
import org.apache.zookeeper.server.quorum.QuorumPeerConfig;
public class QvString {
    public static void main(String[] args) throws Exception {
        for (String path : args) {
            QuorumPeerConfig c = new QuorumPeerConfig();
            try {
                c.parse(path);
                System.out.print(c.getQuorumVerifier().toString());
            } catch (Exception e) {
                System.out.print("ERROR " + e);
            }
            System.out.print("\u0000");
        }
    }
}
