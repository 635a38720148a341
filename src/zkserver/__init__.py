"""zkserver: a ZooKeeper-compatible coordination server."""

__version__ = "0.1.0"
# The Apache ZooKeeper release whose client-visible behaviour we implement; clients and
# test harnesses gate features on the version string that srvr/stat/mntr report.
ZOOKEEPER_COMPAT_VERSION = "3.9.5"
