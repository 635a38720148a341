"""Java iteration orders that Apache's answers expose, checked against what OpenJDK 17 printed."""

from zkserver.tree.javaorder import java_id_order

# A ConcurrentHashMap-backed Set<org.apache.zookeeper.data.Id> (ServerCnxn.authInfo), filled
# in IDS order and iterated by OpenJDK 17 with the Debian zookeeper-jute jar.
IDS = [
    ("ip", "127.0.0.1"),
    ("digest", "alice:9ussi3jBkbd4no1raUvxHSkUEN8="),
    ("digest", "alice:SQICbGEP3vUd4FffsXSLZ8/1XtI="),
    ("digest", "bob:EXcpcQQk6JBIDFnxSqkpDLIhkxw="),
    ("super", ""),
    ("digest", "carol:abc"),
    ("ip", "10.1.2.3"),
]
JAVA_ITERATION = [
    ("super", ""),
    ("ip", "10.1.2.3"),
    ("digest", "alice:SQICbGEP3vUd4FffsXSLZ8/1XtI="),
    ("digest", "bob:EXcpcQQk6JBIDFnxSqkpDLIhkxw="),
    ("ip", "127.0.0.1"),
    ("digest", "alice:9ussi3jBkbd4no1raUvxHSkUEN8="),
    ("digest", "carol:abc"),
]


def test_auth_ids_iterate_as_apache_connection_does():
    assert java_id_order(IDS) == JAVA_ITERATION
