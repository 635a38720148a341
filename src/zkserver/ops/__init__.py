"""The operator surface: four-letter words, the AdminServer, metrics, logs and status.

Everything here reads the server's state; the request path only feeds `stats.ServerStats`.
"""

from .. import ZOOKEEPER_COMPAT_VERSION, __version__

# What srvr/stat/mntr/envi report as "Zookeeper version"; clients gate features on the prefix.
FULL_VERSION = f"{ZOOKEEPER_COMPAT_VERSION}-zkserver-{__version__}, built on zkserver"
