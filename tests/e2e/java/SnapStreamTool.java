import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.util.HashMap;
import java.util.Map;

import org.apache.jute.BinaryInputArchive;
import org.apache.jute.BinaryOutputArchive;
import org.apache.zookeeper.server.DataTree;
import org.apache.zookeeper.server.persistence.FileSnap;
import org.apache.zookeeper.server.persistence.SnapStream;
import org.apache.zookeeper.server.util.SerializeUtils;

/**
 * Apache's own code on the two sides of a SNAP sync, for tests/e2e/test_storage_ensemble_interop.py.
 *
 *   from-stream STREAM SNAPSHOT ZXID_HEX  read STREAM as a learner reads what follows SNAP
 *                                         (SerializeUtils.deserializeSnapshot, then the
 *                                         "BenWasHere" signature) and save it as SNAPSHOT
 *                                         (FileSnap.serialize), lastProcessedZxid = ZXID
 *   to-stream SNAPSHOT STREAM             load SNAPSHOT and write what a leader streams after
 *                                         SNAP (SerializeUtils.serializeSnapshot, the signature)
 *
 * Both print "nodes=N digest=D": the node count (DataTree counts the root twice) and the tree
 * digest Apache computed while loading.
 */
public class SnapStreamTool {
    public static void main(String[] args) throws Exception {
        DataTree tree = new DataTree();
        Map<Long, Integer> sessions = new HashMap<>();
        if (args[0].equals("from-stream")) {
            try (InputStream in = new BufferedInputStream(new FileInputStream(args[1]))) {
                BinaryInputArchive ia = BinaryInputArchive.getArchive(in);
                SerializeUtils.deserializeSnapshot(tree, ia, sessions);
                String signature = ia.readString("signature");
                if (!"BenWasHere".equals(signature)) {
                    throw new IllegalStateException("Missing signature. Got " + signature);
                }
                if (in.read() != -1) {
                    throw new IllegalStateException("bytes after the signature");
                }
            }
            tree.lastProcessedZxid = Long.parseLong(args[3], 16);
            new FileSnap(new File(args[2]).getParentFile()).serialize(tree, sessions, new File(args[2]), true);
        } else {
            try (InputStream in = SnapStream.getInputStream(new File(args[1]))) {
                new FileSnap(null).deserialize(tree, sessions, BinaryInputArchive.getArchive(in));
            }
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            BinaryOutputArchive oa = BinaryOutputArchive.getArchive(bytes);
            SerializeUtils.serializeSnapshot(tree, oa, sessions);
            oa.writeString("BenWasHere", "signature");
            try (FileOutputStream out = new FileOutputStream(args[2])) {
                out.write(bytes.toByteArray());
            }
        }
        System.out.println("nodes=" + tree.getNodeCount() + " digest=" + tree.getTreeDigest());
    }
}
