// ZkDriver: a scripted Apache ZooKeeper Java client for differential tests.
//
// Usage: java -cp <classes>:<zookeeper client jars> ZkDriver HOSTS < script
//
// The script is read from stdin, one command per line; blank lines and lines
// starting with '#' are ignored.  Tokens are separated by whitespace.  A line
// may start with "@NAME" to run the command in session NAME (default "main").
// Every command prints exactly one JSON result line; the "events" command first
// prints one JSON line per queued watch event, then its result line.
// The full command language is documented in tests/support/javaclient.py.

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.ClientCnxn;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.admin.ZooKeeperAdmin;
import org.apache.zookeeper.client.ZKClientConfig;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;

public final class ZkDriver {

    static final String DEFAULT_SESSION = "main";
    static final int DEFAULT_WAIT_MS = 10000;

    static PrintStream out;
    static String hosts;
    static final Map<String, Session> SESSIONS = new LinkedHashMap<>();
    /** Commands that send nothing to the server: their result has no lastZxid. */
    static final java.util.Set<String> LOCAL_COMMANDS = new java.util.HashSet<>(Arrays.asList(
        "sleep", "events", "waitevents", "waitstate", "waitconnected", "dropconnection", "partition", "heal",
        "close", "server"));

    // ------------------------------------------------------------------ main

    public static void main(String[] args) throws Exception {
        out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true, "UTF-8");
        if (args.length < 1) {
            System.err.println("usage: ZkDriver HOSTS < script");
            System.exit(2);
        }
        hosts = args[0];
        System.setProperty("zookeeper.sasl.client", "false");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        int lineNo = 0;
        while ((line = in.readLine()) != null) {
            lineNo++;
            String trimmed = line.trim();
            if (trimmed.isEmpty() || trimmed.startsWith("#")) {
                continue;
            }
            runLine(lineNo, trimmed);
        }
        // Close the sessions (their ephemerals go at once), but never hang the test on it.
        Thread closer = new Thread(() -> SESSIONS.values().forEach(Session::shutdown), "shutdown");
        closer.setDaemon(true);
        closer.start();
        closer.join(5000);
        out.flush();
        System.exit(0);
    }

    static void runLine(int lineNo, String text) {
        List<String> tokens = new ArrayList<>(Arrays.asList(text.split("\\s+")));
        String sessionName = DEFAULT_SESSION;
        if (tokens.get(0).startsWith("@")) {
            sessionName = tokens.remove(0).substring(1);
        }
        Map<String, Object> res = new LinkedHashMap<>();
        res.put("line", lineNo);
        res.put("text", text);
        res.put("session", sessionName);
        res.put("cmd", tokens.isEmpty() ? "" : tokens.get(0));
        Session s = SESSIONS.computeIfAbsent(sessionName, Session::new);
        try {
            if (tokens.isEmpty()) {
                throw new IllegalArgumentException("no command after session prefix");
            }
            res.put("ok", true);
            execute(s, tokens.get(0), new Args(tokens.subList(1, tokens.size())), res);
        } catch (KeeperException e) {
            putKeeperError(res, e.code());
            if (e.getResults() != null) {
                res.put("results", opResults(e.getResults()));
            }
        } catch (Exception e) {
            res.put("ok", false);
            res.put("error", e.getClass().getSimpleName());
            res.put("code", null);
            res.put("message", String.valueOf(e.getMessage()));
        }
        if (s.zk != null && !LOCAL_COMMANDS.contains(res.get("cmd"))) {
            res.put("lastZxid", s.zk.lastZxid());
        }
        out.println(Json.write(res));
    }

    static void putKeeperError(Map<String, Object> res, KeeperException.Code code) {
        res.put("ok", false);
        res.put("error", code.name());
        res.put("code", code.intValue());
    }

    // -------------------------------------------------------------- commands

    static void execute(Session s, String cmd, Args a, Map<String, Object> res) throws Exception {
        switch (cmd) {
            case "connect": s.connect(a.intOr(0, DEFAULT_WAIT_MS), a.has("proxy"), res); break;
            case "close": s.close(); break;
            case "sleep": Thread.sleep(a.intAt(0)); break;
            case "events": s.printEvents(res); break;
            case "waitevents": s.waitEvents(a.intAt(0), a.intOr(1, DEFAULT_WAIT_MS), res); break;
            case "waitstate": s.waitState(a.str(0), a.intOr(1, DEFAULT_WAIT_MS)); break;
            case "waitconnected": s.waitState("SyncConnected", a.intOr(0, DEFAULT_WAIT_MS)); break;
            case "dropconnection": s.dropConnection(); break;
            case "server": res.put("server", String.valueOf(s.zk().serverAddress())); break;
            case "partition": s.partition(); break;
            case "heal": s.heal(); break;
            default: executeZk(s, s.zk(), cmd, a, res);
        }
    }

    static void executeZk(Session s, Zk zk, String cmd, Args a, Map<String, Object> res) throws Exception {
        switch (cmd) {
            case "create": doCreate(zk, a, res); break;
            case "delete": zk.delete(a.str(0), a.intOr(1, -1)); break;
            case "exists": res.put("stat", stat(existsCall(s, zk, a))); break;
            case "get": doGet(s, zk, a, res); break;
            case "set": res.put("stat", stat(zk.setData(a.str(0), a.data(1), a.intOr(2, -1)))); break;
            case "getChildren": res.put("children", sorted(childrenCall(s, zk, a, null))); break;
            case "getChildren2": doGetChildren2(s, zk, a, res); break;
            case "getAllChildrenNumber": res.put("count", zk.getAllChildrenNumber(a.str(0))); break;
            case "getEphemerals": doGetEphemerals(zk, a, res); break;
            case "addWatch": doAddWatch(s, zk, a); break;
            case "removeWatches": doRemoveWatches(s, zk, a); break;
            case "removeAllWatches":
                zk.removeAllWatches(a.str(0), Watcher.WatcherType.valueOf(a.str(1)), a.has("local"));
                break;
            case "multi": case "multiRead": res.put("results", opResults(zk.multi(parseOps(a)))); break;
            case "whoAmI": res.put("clientInfo", clientInfos(zk.whoAmI())); break;
            case "sync": doSync(zk, a, res); break;
            case "addAuth": zk.addAuthInfo(a.str(0), a.str(1).getBytes(StandardCharsets.UTF_8)); break;
            case "setACL": res.put("stat", stat(zk.setACL(a.str(0), parseAcl(a.str(1)), a.intOr(2, -1)))); break;
            case "getACL": doGetAcl(zk, a, res); break;
            case "getConfig": doGetConfig(s, zk, a, res); break;
            case "reconfig": doReconfig(zk, a, res); break;
            default: throw new IllegalArgumentException("unknown command " + cmd);
        }
    }

    static void doCreate(Zk zk, Args a, Map<String, Object> res) throws Exception {
        CreateMode mode = CreateMode.valueOf(a.str(2));
        long ttl = a.longOr(3, -1);
        List<ACL> acl = parseAcl(a.option("acl", "open"));
        Stat st = new Stat();
        res.put("path", zk.create(a.str(0), a.data(1), acl, mode, st, ttl));
        res.put("stat", stat(st));
    }

    static void doGet(Session s, Zk zk, Args a, Map<String, Object> res) throws Exception {
        Stat st = new Stat();
        String w = a.watchSpec(1);
        byte[] data;
        if (w == null) {
            data = zk.getData(a.str(0), false, st);
        } else if (w.equals("watch")) {
            data = zk.getData(a.str(0), true, st);
        } else {
            data = zk.getData(a.str(0), s.watcher(w), st);
        }
        putData(res, data);
        res.put("stat", stat(st));
    }

    static Stat existsCall(Session s, Zk zk, Args a) throws Exception {
        String w = a.watchSpec(1);
        if (w == null) {
            return zk.exists(a.str(0), false);
        }
        if (w.equals("watch")) {
            return zk.exists(a.str(0), true);
        }
        return zk.exists(a.str(0), s.watcher(w));
    }

    /** With st == null this sends getChildren (opcode 8), otherwise getChildren2 (opcode 12). */
    static List<String> childrenCall(Session s, Zk zk, Args a, Stat st) throws Exception {
        String w = a.watchSpec(1);
        String path = a.str(0);
        if (st == null) {
            if (w == null || w.equals("watch")) {
                return zk.getChildren(path, w != null);
            }
            return zk.getChildren(path, s.watcher(w));
        }
        if (w == null || w.equals("watch")) {
            return zk.getChildren(path, w != null, st);
        }
        return zk.getChildren(path, s.watcher(w), st);
    }

    static void doGetChildren2(Session s, Zk zk, Args a, Map<String, Object> res) throws Exception {
        Stat st = new Stat();
        res.put("children", sorted(childrenCall(s, zk, a, st)));
        res.put("stat", stat(st));
    }

    static void doGetEphemerals(Zk zk, Args a, Map<String, Object> res) throws Exception {
        List<String> eph = a.size() > 0 ? zk.getEphemerals(a.str(0)) : zk.getEphemerals();
        res.put("ephemerals", sorted(eph));
    }

    static void doAddWatch(Session s, Zk zk, Args a) throws Exception {
        AddWatchMode mode = AddWatchMode.valueOf(a.str(1));
        String w = a.option("w", null);
        if (w == null) {
            zk.addWatch(a.str(0), mode);
        } else {
            zk.addWatch(a.str(0), s.watcher(w), mode);
        }
    }

    static void doRemoveWatches(Session s, Zk zk, Args a) throws Exception {
        Watcher w = s.watcher(a.option("w", "default"));
        zk.removeWatches(a.str(0), w, Watcher.WatcherType.valueOf(a.str(1)), a.has("local"));
    }

    static void doSync(Zk zk, Args a, Map<String, Object> res) throws Exception {
        CountDownLatch latch = new CountDownLatch(1);
        Object[] box = new Object[2];
        zk.sync(a.str(0), (rc, path, ctx) -> {
            box[0] = rc;
            box[1] = path;
            latch.countDown();
        }, null);
        if (!latch.await(DEFAULT_WAIT_MS * 3L, TimeUnit.MILLISECONDS)) {
            throw new IllegalStateException("sync callback timed out");
        }
        int rc = (Integer) box[0];
        if (rc != 0) {
            putKeeperError(res, KeeperException.Code.get(rc));
        }
        res.put("path", box[1]);
    }

    static void doGetAcl(Zk zk, Args a, Map<String, Object> res) throws Exception {
        Stat st = new Stat();
        List<ACL> acl = zk.getACL(a.str(0), st);
        res.put("acl", aclJson(acl));
        res.put("stat", stat(st));
    }

    static void doGetConfig(Session s, Zk zk, Args a, Map<String, Object> res) throws Exception {
        Stat st = new Stat();
        String w = a.watchSpec(0);
        byte[] data;
        if (w == null) {
            data = zk.getConfig(false, st);
        } else if (w.equals("watch")) {
            data = zk.getConfig(true, st);
        } else {
            data = zk.getConfig(s.watcher(w), st);
        }
        putData(res, data);
        res.put("stat", stat(st));
    }

    static void doReconfig(Zk zk, Args a, Map<String, Object> res) throws Exception {
        Stat st = new Stat();
        byte[] data = zk.reconfigure(a.nullable(0), a.nullable(1), a.nullable(2), a.longOr(3, -1), st);
        putData(res, data);
        res.put("stat", stat(st));
    }

    // ------------------------------------------------------------- multi ops

    static List<Op> parseOps(Args a) {
        List<Op> ops = new ArrayList<>();
        List<String> cur = new ArrayList<>();
        for (String t : a.tokens) {
            if (t.equals("|")) {
                ops.add(parseOp(new Args(cur)));
                cur = new ArrayList<>();
            } else {
                cur.add(t);
            }
        }
        if (!cur.isEmpty()) {
            ops.add(parseOp(new Args(cur)));
        }
        return ops;
    }

    static Op parseOp(Args a) {
        String kind = a.str(0);
        Args r = new Args(a.tokens.subList(1, a.tokens.size()));
        switch (kind) {
            case "create":
                return Op.create(r.str(0), r.data(1), parseAcl(r.option("acl", "open")),
                    CreateMode.valueOf(r.str(2)), r.longOr(3, -1));
            case "delete": return Op.delete(r.str(0), r.intOr(1, -1));
            case "set": return Op.setData(r.str(0), r.data(1), r.intOr(2, -1));
            case "check": return Op.check(r.str(0), r.intAt(1));
            case "get": case "getData": return Op.getData(r.str(0));
            case "getChildren": return Op.getChildren(r.str(0));
            default: throw new IllegalArgumentException("unknown multi op " + kind);
        }
    }

    static List<Object> opResults(List<OpResult> results) {
        List<Object> list = new ArrayList<>();
        for (OpResult r : results) {
            list.add(opResult(r));
        }
        return list;
    }

    static Map<String, Object> opResult(OpResult r) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (r instanceof OpResult.CreateResult) {
            OpResult.CreateResult c = (OpResult.CreateResult) r;
            m.put("type", "create");
            m.put("path", c.getPath());
            m.put("stat", stat(c.getStat()));
        } else if (r instanceof OpResult.DeleteResult) {
            m.put("type", "delete");
        } else if (r instanceof OpResult.SetDataResult) {
            m.put("type", "set");
            m.put("stat", stat(((OpResult.SetDataResult) r).getStat()));
        } else if (r instanceof OpResult.CheckResult) {
            m.put("type", "check");
        } else if (r instanceof OpResult.GetDataResult) {
            OpResult.GetDataResult g = (OpResult.GetDataResult) r;
            m.put("type", "getData");
            putData(m, g.getData());
            m.put("stat", stat(g.getStat()));
        } else if (r instanceof OpResult.GetChildrenResult) {
            m.put("type", "getChildren");
            m.put("children", sorted(((OpResult.GetChildrenResult) r).getChildren()));
        } else if (r instanceof OpResult.ErrorResult) {
            int err = ((OpResult.ErrorResult) r).getErr();
            m.put("type", "error");
            m.put("error", KeeperException.Code.get(err) == null ? null : KeeperException.Code.get(err).name());
            m.put("code", err);
        } else {
            m.put("type", r.getClass().getSimpleName());
        }
        return m;
    }

    // ------------------------------------------------------------- ACL / data

    static List<ACL> parseAcl(String spec) {
        switch (spec) {
            case "open": return ZooDefs.Ids.OPEN_ACL_UNSAFE;
            case "creator": return ZooDefs.Ids.CREATOR_ALL_ACL;
            case "read": return ZooDefs.Ids.READ_ACL_UNSAFE;
            default: break;
        }
        List<ACL> acl = new ArrayList<>();
        for (String entry : spec.split(",")) {
            int first = entry.indexOf(':');
            int last = entry.lastIndexOf(':');
            if (first < 0 || last == first) {
                throw new IllegalArgumentException("bad ACL entry " + entry + " (want scheme:id:perms)");
            }
            String scheme = entry.substring(0, first);
            String id = entry.substring(first + 1, last);
            int perms = parsePerms(entry.substring(last + 1));
            if (scheme.equals("digestpw")) {
                scheme = "digest";
                id = digest(id);
            }
            acl.add(new ACL(perms, new Id(scheme, id)));
        }
        return acl;
    }

    static String digest(String userPass) {
        try {
            return DigestAuthenticationProvider.generateDigest(userPass);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    static int parsePerms(String p) {
        if (p.matches("\\d+")) {
            return Integer.parseInt(p);
        }
        int perms = 0;
        for (char c : p.toCharArray()) {
            switch (c) {
                case 'r': perms |= ZooDefs.Perms.READ; break;
                case 'w': perms |= ZooDefs.Perms.WRITE; break;
                case 'c': perms |= ZooDefs.Perms.CREATE; break;
                case 'd': perms |= ZooDefs.Perms.DELETE; break;
                case 'a': perms |= ZooDefs.Perms.ADMIN; break;
                default: throw new IllegalArgumentException("bad permission letter " + c);
            }
        }
        return perms;
    }

    static List<Object> aclJson(List<ACL> acl) {
        List<Object> list = new ArrayList<>();
        for (ACL x : acl) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("perms", x.getPerms());
            m.put("scheme", x.getId().getScheme());
            m.put("id", x.getId().getId());
            list.add(m);
        }
        return list;
    }

    static List<Object> clientInfos(List<ClientInfo> infos) {
        List<Object> list = new ArrayList<>();
        for (ClientInfo ci : infos) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("authScheme", ci.getAuthScheme());
            m.put("user", ci.getUser());
            list.add(m);
        }
        // Apache keeps a connection's auth ids in a hash set: the order on the wire means nothing.
        list.sort(Comparator.comparing((Object o) -> ((Map<?, ?>) o).get("authScheme") + "\u0000"
            + ((Map<?, ?>) o).get("user")));
        return list;
    }

    static byte[] decodeData(String tok) {
        if (tok.equals("null")) {
            return null;
        }
        if (tok.equals("-")) {
            return new byte[0];
        }
        if (tok.startsWith("hex:")) {
            return hexDecode(tok.substring(4));
        }
        if (tok.startsWith("b64:")) {
            return Base64.getDecoder().decode(tok.substring(4));
        }
        if (tok.startsWith("str:")) {
            return tok.substring(4).getBytes(StandardCharsets.UTF_8);
        }
        return tok.getBytes(StandardCharsets.UTF_8);
    }

    static byte[] hexDecode(String hex) {
        if (hex.length() % 2 != 0) {
            throw new IllegalArgumentException("odd hex length");
        }
        byte[] b = new byte[hex.length() / 2];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        return b;
    }

    /** Puts "data" (UTF-8 text) or, for bytes that are not valid UTF-8, "dataB64". */
    static void putData(Map<String, Object> m, byte[] data) {
        if (data == null) {
            m.put("data", null);
            return;
        }
        try {
            String text = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(data)).toString();
            m.put("data", text);
        } catch (CharacterCodingException e) {
            m.put("dataB64", Base64.getEncoder().encodeToString(data));
        }
    }

    static Map<String, Object> stat(Stat s) {
        if (s == null) {
            return null;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("czxid", s.getCzxid());
        m.put("mzxid", s.getMzxid());
        m.put("ctime", s.getCtime());
        m.put("mtime", s.getMtime());
        m.put("version", s.getVersion());
        m.put("cversion", s.getCversion());
        m.put("aversion", s.getAversion());
        m.put("ephemeralOwner", s.getEphemeralOwner());
        m.put("dataLength", s.getDataLength());
        m.put("numChildren", s.getNumChildren());
        m.put("pzxid", s.getPzxid());
        return m;
    }

    static List<String> sorted(List<String> l) {
        List<String> copy = new ArrayList<>(l);
        Collections.sort(copy);
        return copy;
    }

    // ---------------------------------------------------------------- session

    /** ZooKeeperAdmin subclass: gives access to the protected ClientCnxn. */
    static final class Zk extends ZooKeeperAdmin {
        Zk(String connect, int timeout, Watcher w, ZKClientConfig cfg) throws IOException {
            super(connect, timeout, w, cfg);
        }

        long lastZxid() {
            return cnxn.getLastZxid();
        }

        /** The server this session is connected to now, as host:port (null while disconnected). */
        String serverAddress() {
            SocketAddress addr = testableRemoteSocketAddress();
            if (!(addr instanceof InetSocketAddress)) {
                return null;
            }
            InetSocketAddress inet = (InetSocketAddress) addr;
            return inet.getAddress().getHostAddress() + ":" + inet.getPort();
        }

        /**
         * Waits until the client's EventThread has delivered everything queued so far, by queueing
         * a local callback behind it (ClientCnxn.queueCallback, via reflection). False on timeout.
         */
        boolean eventBarrier(long timeoutMs) throws Exception {
            CountDownLatch done = new CountDownLatch(1);
            AsyncCallback.StatCallback marker = (rc, path, ctx, stat) -> done.countDown();
            Method m = ClientCnxn.class.getDeclaredMethod(
                "queueCallback", AsyncCallback.class, int.class, String.class, Object.class);
            m.setAccessible(true);
            m.invoke(cnxn, marker, 0, null, null);
            return done.await(timeoutMs, TimeUnit.MILLISECONDS);
        }

        /** Closes the TCP socket under the client without ending the session (test hook, via reflection). */
        void testableCloseSocket() throws Exception {
            Field f = ClientCnxn.class.getDeclaredField("sendThread");
            f.setAccessible(true);
            Object sendThread = f.get(cnxn);
            Method close = sendThread.getClass().getDeclaredMethod("testableCloseSocket");
            close.setAccessible(true);
            close.invoke(sendThread);
            // The SendThread would notice the closed socket only when it next writes (the ping, a
            // third of the session timeout later): queue a request now, which fails with
            // ConnectionLoss and makes the client disconnect and reconnect at once.
            exists("/", false, (rc, path, ctx, stat) -> { }, null);
        }
    }

    static final class Event {
        final String label;
        final WatchedEvent ev;

        Event(String label, WatchedEvent ev) {
            this.label = label;
            this.ev = ev;
        }

        /** Events with equal keys next to each other form a run that canonicalOrder sorts. */
        String key() {
            String type = ev.getType().name();
            // one removeWatches call yields Data/Child/PersistentWatchRemoved in HashMap order
            String group = type.endsWith("WatchRemoved") ? "WatchRemoved" : type;
            return group + "\u0000" + ev.getState() + "\u0000" + ev.getPath();
        }

        String sortKey() {
            return ev.getType().name() + "\u0000" + label;
        }
    }

    static final class Session {
        final String name;
        Zk zk;
        Proxy proxy;
        final List<Event> queue = new ArrayList<>();
        final Map<String, Watcher> watchers = new HashMap<>();
        Watcher.Event.KeeperState lastState;
        int stateChanges;

        Session(String name) {
            this.name = name;
            watchers.put("default", new Watcher() {
                @Override
                public void process(WatchedEvent event) {
                    onEvent("default", event);
                }

                @Override
                public String toString() {
                    return "watcher:default";
                }
            });
        }

        Zk zk() {
            if (zk == null) {
                throw new IllegalStateException("session " + name + " is not connected (use connect)");
            }
            return zk;
        }

        Watcher watcher(String label) {
            return watchers.computeIfAbsent(label, l -> new Watcher() {
                @Override
                public void process(WatchedEvent event) {
                    onEvent(l, event);
                }

                @Override
                public String toString() {
                    return "watcher:" + l;
                }
            });
        }

        synchronized void onEvent(String label, WatchedEvent ev) {
            if (ev.getType() == Watcher.Event.EventType.None) {
                // The 3.8 client hands state events to every registered watcher (client-side fan-out),
                // and repeats Disconnected on every failed reconnect: keep the default watcher's changes.
                if (!label.equals("default") || ev.getState() == lastState) {
                    return;
                }
                lastState = ev.getState();
                stateChanges++;
            }
            queue.add(new Event(label, ev));
            notifyAll();
        }

        void connect(int timeoutMs, boolean viaProxy, Map<String, Object> res) throws Exception {
            if (zk != null && zk.getState().isAlive()) {
                throw new IllegalStateException("session " + name + " already connected");
            }
            if (proxy != null) {
                proxy.shutdown();
                proxy = null;
            }
            String target = hosts;
            if (viaProxy) {
                proxy = new Proxy(hosts.split(",")[0]);
                target = "127.0.0.1:" + proxy.port();
            }
            ZKClientConfig cfg = new ZKClientConfig();
            cfg.setProperty(ZKClientConfig.ENABLE_CLIENT_SASL_KEY, "false");
            zk = new Zk(target, timeoutMs, watchers.get("default"), cfg);
            waitState("SyncConnected", Math.max(timeoutMs, DEFAULT_WAIT_MS));
            res.put("sessionId", zk.getSessionId());
            res.put("sessionTimeout", zk.getSessionTimeout());
        }

        void close() throws Exception {
            zk().close();
        }

        synchronized void waitState(String state, int timeoutMs) throws Exception {
            Watcher.Event.KeeperState want = Watcher.Event.KeeperState.valueOf(state);
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (lastState != want) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    throw new IllegalStateException("timed out waiting for state " + state + ", now " + lastState);
                }
                wait(left);
            }
        }

        synchronized void waitStateChange(int before, int timeoutMs) throws Exception {
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (stateChanges == before) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    throw new IllegalStateException("timed out waiting for a connection state change");
                }
                wait(left);
            }
        }

        synchronized int stateChanges() {
            return stateChanges;
        }

        void dropConnection() throws Exception {
            int before = stateChanges();
            zk().testableCloseSocket();
            waitStateChange(before, DEFAULT_WAIT_MS);
        }

        void partition() throws Exception {
            if (proxy == null) {
                throw new IllegalStateException("partition needs a session opened with: connect TIMEOUT proxy");
            }
            int before = stateChanges();
            proxy.setBlocked(true);
            waitStateChange(before, DEFAULT_WAIT_MS);
        }

        void heal() {
            if (proxy == null) {
                throw new IllegalStateException("heal needs a session opened with: connect TIMEOUT proxy");
            }
            proxy.setBlocked(false);
        }

        synchronized void waitEvents(int n, int timeoutMs, Map<String, Object> res) throws Exception {
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (queue.size() < n) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    break;
                }
                wait(left);
            }
            if (queue.size() < n) {
                res.put("queued", queue.size());
                res.put("ok", false);
                res.put("error", "Timeout");
                res.put("code", null);
            }
        }

        /** Prints and drains the queue; deliveries of one notification to several watchers sorted by label. */
        void printEvents(Map<String, Object> res) throws Exception {
            if (zk != null) {
                // after close the EventThread may be gone: then do not wait long
                zk.eventBarrier(zk.getState().isAlive() ? DEFAULT_WAIT_MS : 500);
            }
            List<Event> events;
            synchronized (this) {
                events = new ArrayList<>(queue);
                queue.clear();
            }
            canonicalOrder(events);
            for (Event e : events) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("event", e.ev.getType().name());
                m.put("state", e.ev.getState().name());
                m.put("path", e.ev.getPath());
                m.put("watcher", e.label);
                m.put("session", name);
                out.println(Json.write(m));
            }
            res.put("count", events.size());
        }

        void shutdown() {
            try {
                if (zk != null) {
                    zk.close();
                }
            } catch (Exception e) {
                // best effort at end of script
            }
            if (proxy != null) {
                proxy.shutdown();
            }
        }
    }

    /**
     * The client's EventThread calls the watchers of one notification in HashSet order, and queues
     * the events of one watch removal in HashMap order: sort each run of such events.
     */
    static void canonicalOrder(List<Event> events) {
        int i = 0;
        while (i < events.size()) {
            int j = i + 1;
            while (j < events.size() && events.get(j).key().equals(events.get(i).key())) {
                j++;
            }
            events.subList(i, j).sort(Comparator.comparing(Event::sortKey));
            i = j;
        }
    }

    // ------------------------------------------------------------------ args

    static final class Args {
        final List<String> tokens;

        Args(List<String> tokens) {
            this.tokens = tokens;
        }

        int size() {
            int n = 0;
            for (String t : tokens) {
                if (!isOption(t)) {
                    n++;
                }
            }
            return n;
        }

        static boolean isOption(String t) {
            return t.startsWith("acl=") || t.startsWith("w=") || t.equals("local") || t.equals("proxy");
        }

        /** The i-th positional token (options such as w=NAME, acl=SPEC, local, proxy are skipped). */
        String positional(int i) {
            int n = 0;
            for (String t : tokens) {
                if (isOption(t)) {
                    continue;
                }
                if (n++ == i) {
                    return t;
                }
            }
            return null;
        }

        String str(int i) {
            String t = positional(i);
            if (t == null) {
                throw new IllegalArgumentException("missing argument " + (i + 1));
            }
            return t;
        }

        String nullable(int i) {
            String t = positional(i);
            return t == null || t.equals("-") ? null : t;
        }

        int intAt(int i) {
            return Integer.parseInt(str(i));
        }

        int intOr(int i, int dflt) {
            String t = positional(i);
            return t == null ? dflt : Integer.parseInt(t);
        }

        long longOr(int i, long dflt) {
            String t = positional(i);
            return t == null ? dflt : Long.parseLong(t);
        }

        byte[] data(int i) {
            return decodeData(str(i));
        }

        boolean has(String flag) {
            return tokens.contains(flag);
        }

        String option(String key, String dflt) {
            for (String t : tokens) {
                if (t.startsWith(key + "=")) {
                    return t.substring(key.length() + 1);
                }
            }
            return dflt;
        }

        /** null (no watch), "watch" (the default watcher) or a named watcher label from w=NAME. */
        String watchSpec(int i) {
            String w = option("w", null);
            if (w != null) {
                return w;
            }
            String t = positional(i);
            if (t == null) {
                return null;
            }
            if (!t.equals("watch")) {
                throw new IllegalArgumentException("expected 'watch' or w=NAME, got " + t);
            }
            return "watch";
        }
    }

    // ----------------------------------------------------------------- proxy

    /** A TCP forwarder in front of the server; setBlocked(true) cuts and refuses connections. */
    static final class Proxy {
        final ServerSocket server;
        final String host;
        final int port;
        final List<Socket> open = new ArrayList<>();
        volatile boolean blocked;

        Proxy(String target) throws IOException {
            int colon = target.lastIndexOf(':');
            host = target.substring(0, colon);
            port = Integer.parseInt(target.substring(colon + 1));
            server = new ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"));
            Thread t = new Thread(this::acceptLoop, "proxy-accept");
            t.setDaemon(true);
            t.start();
        }

        int port() {
            return server.getLocalPort();
        }

        void acceptLoop() {
            while (!server.isClosed()) {
                try {
                    Socket client = server.accept();
                    if (blocked) {
                        client.close();
                        continue;
                    }
                    Socket upstream = new Socket();
                    upstream.connect(new InetSocketAddress(host, port), 5000);
                    synchronized (this) {
                        open.add(client);
                        open.add(upstream);
                    }
                    pump(client, upstream);
                    pump(upstream, client);
                } catch (IOException e) {
                    // accept failed or upstream down: the client will retry
                }
            }
        }

        void pump(Socket from, Socket to) {
            Thread t = new Thread(() -> {
                byte[] buf = new byte[65536];
                try (InputStream in = from.getInputStream(); OutputStream o = to.getOutputStream()) {
                    int n;
                    while ((n = in.read(buf)) >= 0) {
                        o.write(buf, 0, n);
                        o.flush();
                    }
                } catch (IOException e) {
                    // connection cut
                } finally {
                    closeQuietly(from);
                    closeQuietly(to);
                }
            }, "proxy-pump");
            t.setDaemon(true);
            t.start();
        }

        synchronized void setBlocked(boolean b) {
            blocked = b;
            if (b) {
                for (Socket s : open) {
                    closeQuietly(s);
                }
                open.clear();
            }
        }

        void shutdown() {
            setBlocked(true);
            closeQuietly(server);
        }

        static void closeQuietly(java.io.Closeable c) {
            try {
                c.close();
            } catch (IOException e) {
                // ignore
            }
        }
    }

    // ------------------------------------------------------------------ JSON

    static final class Json {
        static String write(Object o) {
            StringBuilder sb = new StringBuilder();
            write(sb, o);
            return sb.toString();
        }

        @SuppressWarnings("unchecked")
        static void write(StringBuilder sb, Object o) {
            if (o == null) {
                sb.append("null");
            } else if (o instanceof String) {
                string(sb, (String) o);
            } else if (o instanceof Number || o instanceof Boolean) {
                sb.append(o);
            } else if (o instanceof Map) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<String, Object> e : ((Map<String, Object>) o).entrySet()) {
                    if (!first) {
                        sb.append(", ");
                    }
                    first = false;
                    string(sb, e.getKey());
                    sb.append(": ");
                    write(sb, e.getValue());
                }
                sb.append('}');
            } else if (o instanceof List) {
                sb.append('[');
                boolean first = true;
                for (Object x : (List<Object>) o) {
                    if (!first) {
                        sb.append(", ");
                    }
                    first = false;
                    write(sb, x);
                }
                sb.append(']');
            } else {
                string(sb, o.toString());
            }
        }

        static void string(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20 || c == 0x2028 || c == 0x2029) {
                            sb.append(String.format("\\u%04x", (int) c));
                        } else {
                            sb.append(c);
                        }
                }
            }
            sb.append('"');
        }
    }
}
