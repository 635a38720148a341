"""The corpus: configurations people already have, with the files and flags they come with.

Each entry is run twice by test_corpus.py with the very same files and the very same `java`
command line: once with the JVM first on PATH (Apache ZooKeeper 3.8), once with
tests/support/java-shim/java first (zkserver). Both must serve, or both must refuse for the
same reason (REASONS: one pattern for each server's words).

What is substituted, and only that: the machine-specific values, written as placeholders.
    {dir}        the node's working directory (where /tmp/zookeeper, /data, /var/log... were)
    {port}       its client port (2181 in the originals); {secure_port}; {admin_port} (see below)
    {myid}       the node's server id; {portN}, {quorumN}, {electionN}: node N's ports (ensembles)
    {classpath}  Apache's classpath here (tests/support/servers.APACHE_CLASSPATH); the shim ignores -cp
`-Dzookeeper.admin.serverPort={admin_port}` is added where the original would bind 8080: the
test machine may have that port taken (Apache's Debian package has no Jetty, so only zkserver
binds it). Ensemble forms are entries with nodes=3 (every node gets the same files, its own
{myid} and ports) or KazooEntry(size=3, observer_start_id=...): for them "serves" means the
members form a quorum (one leader, the rest followers or the observers named) and a write made
through one member is read through another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

APACHE_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
SAMPLE_CFG = "/etc/zookeeper/conf/zoo.cfg"  # Debian ships Apache 3.8.0's conf/zoo_sample.cfg, byte for byte

# bin/zkServer.sh start-foreground of Apache's 3.8 tarball (and of the official Docker image, which
# runs it): JMX local-only false, SERVER_JVMFLAGS -Xmx1000m from zkEnv.sh.
TARBALL_JVM = (
    "-Dzookeeper.log.dir={dir}/logs", "-Dzookeeper.log.file=zookeeper-zookeeper-server-host.log",
    "-XX:+HeapDumpOnOutOfMemoryError", "-XX:OnOutOfMemoryError=kill -9 %p",
    "-cp", "{classpath}", "-Xmx1000m",
    "-Dcom.sun.management.jmxremote", "-Dcom.sun.management.jmxremote.local.only=false",
)
# A kazoo-harness-shaped command line (ManagedZooKeeper.run), for the synthetic entries.
HARNESS_JVM = (
    "-cp", "{classpath}", "-Dfile.encoding=UTF-8", "-Dreadonlymode.enabled=true",
    "-Dzookeeper.log.dir={dir}/log", "-Dzookeeper.root.logger=INFO,CONSOLE", "-Djava.awt.headless=true",
)
PLAIN_CFG = "tickTime=2000\ndataDir={dir}/data\nclientPort={port}\nmaxClientCnxns=0\nadmin.enableServer=false\n"


@dataclass(frozen=True)
class Installed:
    """A file as a package installed it, with machine-specific values replaced."""

    path: str
    replace: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Entry:
    name: str
    origin: str
    files: dict[str, str | Installed]  # path below {dir} -> text (placeholders) or an installed file
    jvm: tuple[str, ...]  # the java arguments before the main class
    args: tuple[str, ...] = ("{dir}/zoo.cfg",)
    mkdirs: tuple[str, ...] = ()  # directories below {dir} that exist before start
    expect: str = "serves"  # or a key of REASONS
    same_4lw: tuple[str, ...] = ()  # four-letter words that must be enabled (or refused) on both
    nodes: int = 1


@dataclass(frozen=True)
class KazooEntry:
    """kazoo's ManagedZooKeeper writes the files and flags itself (tests/support/kazoo_cluster.py)."""

    name: str
    origin: str
    env: dict[str, str] = field(default_factory=dict)  # e.g. ZOOKEEPER_JAAS_AUTH
    needs_kdc: bool = False
    size: int = 1
    observer_start_id: int = -1


# reason -> (what Apache says, what zkserver says), as regular expressions over their output
REASONS: dict[str, tuple[str, str]] = {
    "jaas-unusable": (r"No JAAS configuration section named 'Server' was found in",) * 2,
    "datadir-autocreate-off": (r"Missing data directory .*zookeeper\.datadir\.autocreate is false",) * 2,
    "election-alg": (r"Invalid electionAlg value\. Only 3 is supported", r"electionAlg: 1 is not supported"),
    "address-without-port": (r"clientPortAddress is set but clientPort is not set",
                             r"clientPortAddress: is set but clientPort is not set"),
    "session-timeouts": (r"minSessionTimeout must not be larger than maxSessionTimeout",
                         r"minSessionTimeout \(\d+\) must not be larger than maxSessionTimeout"),
    "not-a-number": (r'NumberFormatException: For input string: ""', r"maxClientCnxns: '' is not a number"),
}

DOCKER_CFG = (  # docker-entrypoint.sh of the official image, with the Dockerfile's ENV defaults
    "dataDir={dir}/data\ndataLogDir={dir}/datalog\ntickTime=2000\ninitLimit=5\nsyncLimit=2\n"
    "autopurge.snapRetainCount=3\nautopurge.purgeInterval=0\nmaxClientCnxns=60\nstandaloneEnabled=true\n"
    "admin.enableServer=true\n"
)
# The image's documented ensemble (docs/zookeeper stack.yml): every member gets the same
# ZOO_SERVERS, "server.N=zooN:2888:3888;2181" for N = 1..3, and its own ZOO_MY_ID. The containers'
# host names become localhost here, and their 2888/3888/2181 each member's own ports.
DOCKER_ENSEMBLE_SERVERS = "".join(f"server.{n}=localhost:{{quorum{n}}}:{{election{n}}};{{port{n}}}\n"
                                  for n in (1, 2, 3))
KAFKA_PROPERTIES = (  # Apache Kafka's config/zookeeper.properties (its license header left out)
    "# the directory where the snapshot is stored.\ndataDir={dir}/zookeeper\n"
    "# the port at which the clients will connect\nclientPort={port}\n"
    "# disable the per-ip limit on the number of connections since this is a non-production config\n"
    "maxClientCnxns=0\n# Disable the adminserver by default to avoid port conflicts.\n"
    "# Set the port to something non-conflicting if choosing to enable this\n"
    "admin.enableServer=false\n# admin.serverPort=8080\n"
)
KAFKA_JVM = (  # bin/zookeeper-server-start.sh -> kafka-run-class.sh (Kafka 3.x on Java 17)
    "-Xmx512M", "-Xms512M", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true", "-Xlog:gc*:file={dir}/logs/zookeeper-gc.log:time,tags:filecount=10,filesize=100M",
    "-Dcom.sun.management.jmxremote", "-Dcom.sun.management.jmxremote.authenticate=false",
    "-Dcom.sun.management.jmxremote.ssl=false", "-Dkafka.logs.dir={dir}/logs",
    "-Dlog4j.configuration=file:{dir}/config/log4j.properties", "-cp", "{classpath}",
)
SAMPLE_HERE = (("dataDir=/tmp/zookeeper", "dataDir={dir}/data"), ("clientPort=2181", "clientPort={port}"))

ENTRIES: tuple[Entry, ...] = (
    Entry("apache-zoo_sample", "Apache 3.8.0 conf/zoo_sample.cfg run by the tarball's zkServer.sh start-foreground",
          {"zoo.cfg": Installed(SAMPLE_CFG, SAMPLE_HERE)},
          (*TARBALL_JVM, "-Dzookeeper.admin.serverPort={admin_port}"), same_4lw=("srvr", "ruok", "stat")),
    Entry("debian-packaged", "Debian's /etc/zookeeper/conf (zoo.cfg, environment) run by its zkServer.sh",
          {"zoo.cfg": Installed(SAMPLE_CFG, SAMPLE_HERE)},
          ("-Dzookeeper.log.dir={dir}/var/log/zookeeper", "-Dzookeeper.log.file=zookeeper-zookeeper-server-host.log",
           "-XX:+HeapDumpOnOutOfMemoryError", "-XX:OnOutOfMemoryError=kill -9 %p",
           "-cp", "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar", "-Dcom.sun.management.jmxremote",
           "-Dcom.sun.management.jmxremote.local.only=true", "-Dzookeeper.admin.serverPort={admin_port}")),
    Entry("docker-official-standalone", "the official image's docker-entrypoint.sh defaults: ZOO_SERVERS="
          "server.1=localhost:2888:3888;2181, myid 1, no clientPort line", {
              "conf/zoo.cfg": DOCKER_CFG + "server.1=localhost:2888:3888;{port}\n", "data/myid": "1\n"},
          (*TARBALL_JVM, "-Dzookeeper.admin.serverPort={admin_port}"), args=("{dir}/conf/zoo.cfg",),
          mkdirs=("datalog", "logs")),
    Entry("docker-official-ensemble", "the official image's docker-entrypoint.sh with its documented three-member"
          " ZOO_SERVERS (server.N=zooN:2888:3888;2181) and ZOO_MY_ID 1..3", {
              "conf/zoo.cfg": DOCKER_CFG + DOCKER_ENSEMBLE_SERVERS, "data/myid": "{myid}\n"},
          (*TARBALL_JVM, "-Dzookeeper.admin.serverPort={admin_port}"), args=("{dir}/conf/zoo.cfg",),
          mkdirs=("datalog", "logs"), nodes=3),
    Entry("kafka-zookeeper-properties", "Apache Kafka's config/zookeeper.properties via zookeeper-server-start.sh",
          {"config/zookeeper.properties": KAFKA_PROPERTIES,
           "config/log4j.properties": "log4j.rootLogger=INFO, stdout\n"
                                      "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
                                      "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"},
          KAFKA_JVM, args=("{dir}/config/zookeeper.properties",), mkdirs=("logs",)),
    # -- where zkserver used to be stricter than Apache at start-up
    Entry("jaas-file-without-server-section", "kazoo's harness outside its SASL tests: an empty jaas.conf",
          {"zoo.cfg": PLAIN_CFG + "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
           "jaas.conf": ""}, (*HARNESS_JVM, "-Djava.security.auth.login.config={dir}/jaas.conf")),
    Entry("sasl-serverconfig-without-jaas", "zookeeper.sasl.serverconfig set, no JAAS file",
          {"zoo.cfg": PLAIN_CFG}, (*HARNESS_JVM, "-Dzookeeper.sasl.serverconfig=ZkServer")),
    Entry("malformed-java-properties", "values Apache reads with Integer.getInteger/Boolean.parseBoolean", {
        "zoo.cfg": PLAIN_CFG + "forceSync=false\nskipACL=true\nsnapCount=lots\npreAllocSize=64M\n"
                               "globalOutstandingLimit=1k\ndigest.enabled=yes\n"},
          (*HARNESS_JVM, "-Djute.maxbuffer=4M", "-Dzookeeper.extendedTypesEnabled=on")),
    Entry("unknown-keys-and-empty-values", "keys Apache turns into system properties, some empty",
          {"zoo.cfg": PLAIN_CFG + "someTool.setting=1\nanotherKey=\nzookeeper.prefixed=2\n4lw.commands.whitelist=\n"},
          HARNESS_JVM, same_4lw=("srvr", "ruok")),
    Entry("zoo-cfg-and-minus-d", "the same property in zoo.cfg and as -D: zoo.cfg wins",
          {"zoo.cfg": PLAIN_CFG + "4lw.commands.whitelist=ruok, srvr\n"},
          (*HARNESS_JVM, "-Dzookeeper.4lw.commands.whitelist=*"), same_4lw=("ruok", "stat", "conf", "mntr")),
    Entry("paths-that-do-not-exist-yet", "nested data dirs, log dir and TLS stores that are not there yet", {
        "zoo.cfg": "tickTime=2000\ndataDir={dir}/a/b/data\ndataLogDir={dir}/c/d/log\nclientPort={port}\n"
                   "admin.enableServer=false\nsecureClientPort={secure_port}\n"
                   "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
                   "ssl.keyStore.location={dir}/later/keystore.jks\nssl.keyStore.password=apassword\n"
                   "ssl.trustStore.location={dir}/later/truststore.jks\nssl.trustStore.password=apassword\n"},
          (*HARNESS_JVM, "-Dzookeeper.log.dir={dir}/no/such/logs")),
    Entry("ports-given-twice", "clientPort twice (the last wins) and again on this server's server.1 line",
          {"zoo.cfg": PLAIN_CFG.replace("clientPort={port}", "clientPort=2181\nclientPort={port}")
                      + "server.1=localhost:2888:3888;{port}\n", "data/myid": "1\n"}, HARNESS_JVM),
    Entry("empty-client-port-address", "clientPortAddress= (empty): the loopback address",
          {"zoo.cfg": PLAIN_CFG + "clientPortAddress=\n"}, HARNESS_JVM),
    # -- refused by both, for the same reason
    Entry("jaas-file-that-does-not-parse", "a broken jaas.conf", {
        "zoo.cfg": PLAIN_CFG, "jaas.conf": "Server {{\n  org.apache.zookeeper.server.auth.DigestLoginModule\n"},
          (*HARNESS_JVM, "-Djava.security.auth.login.config={dir}/jaas.conf"), expect="jaas-unusable"),
    Entry("jaas-file-missing", "java.security.auth.login.config names no file", {"zoo.cfg": PLAIN_CFG},
          (*HARNESS_JVM, "-Djava.security.auth.login.config={dir}/nowhere/jaas.conf"), expect="jaas-unusable"),
    Entry("datadir-autocreate-off", "zkServer.sh with ZOO_DATADIR_AUTOCREATE_DISABLE and no data dir",
          {"zoo.cfg": PLAIN_CFG}, ("-Dzookeeper.datadir.autocreate=false", *HARNESS_JVM),
          expect="datadir-autocreate-off"),
    Entry("election-alg-1", "electionAlg=1 (removed in 3.6)", {"zoo.cfg": PLAIN_CFG + "electionAlg=1\n"},
          HARNESS_JVM, expect="election-alg"),
    Entry("client-port-address-without-port", "clientPortAddress without clientPort",
          {"zoo.cfg": "tickTime=2000\ndataDir={dir}/data\nclientPortAddress=127.0.0.1\n"}, HARNESS_JVM,
          expect="address-without-port"),
    Entry("session-timeouts-crossed", "minSessionTimeout over maxSessionTimeout",
          {"zoo.cfg": PLAIN_CFG + "minSessionTimeout=30000\nmaxSessionTimeout=10000\n"}, HARNESS_JVM,
          expect="session-timeouts"),
    Entry("empty-number", "maxClientCnxns= (QuorumPeerConfig's own Integer.parseInt)",
          {"zoo.cfg": PLAIN_CFG.replace("maxClientCnxns=0", "maxClientCnxns=")}, HARNESS_JVM,
          expect="not-a-number"),
)

KAZOO_ENTRIES: tuple[KazooEntry, ...] = (
    KazooEntry("kazoo-plain", "ManagedZooKeeper as every kazoo test starts it: TLS port with JKS stores, Netty,"
               " the SASL provider, an empty jaas.conf"),
    KazooEntry("kazoo-sasl-digest", "ZOOKEEPER_JAAS_AUTH=digest (DigestLoginModule users)",
               {"ZOOKEEPER_JAAS_AUTH": "digest"}),
    KazooEntry("kazoo-gssapi", "ZOOKEEPER_JAAS_AUTH=gssapi (Krb5LoginModule, keytab, -Djava.security.krb5.conf)",
               {"ZOOKEEPER_JAAS_AUTH": "gssapi"}, needs_kdc=True),
    KazooEntry("kazoo-cluster-observers", "ZOOKEEPER_CLUSTER_SIZE=3, ZOOKEEPER_OBSERVER_START_ID=3: server.N lines"
               " without client ports, peerType, initLimit/syncLimit, reconfigEnabled=true", size=3,
               observer_start_id=3),
)
