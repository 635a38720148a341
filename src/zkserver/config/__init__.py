"""zoo.cfg and system-property configuration, read the way Apache ZooKeeper reads it.

Theory of operation
-------------------
Apache ZooKeeper has two sources of settings: the config file (a java.util.Properties
file) and JVM system properties (``-Dname=value``). It reads the file key by key. Keys it
knows become fields of its config object. Every other key becomes the system property
``zookeeper.<key>``, which *overwrites* a ``-D`` value of that name. Most components then
read system properties, not the file. So ``snapCount=10`` in zoo.cfg and
``-Dzookeeper.snapCount=10`` mean the same, while ``jute.maxbuffer`` in zoo.cfg becomes
``zookeeper.jute.maxbuffer``, a name nothing reads.

We keep that model, but without global state:

* ``parse_system_properties`` collects ``-D`` items from the command line and from the
  ``SERVER_JVMFLAGS``/``JVMFLAGS`` variables that zkServer.sh passes to the JVM.
* ``load_config`` parses the file, merges the unknown keys into the properties as Apache
  does, validates every value, and returns one frozen ``ServerConfig``. Nothing reads
  ``os.environ`` or a global after that.
* Typed accessors on ``ServerConfig`` read ``properties`` with Apache's property names
  and defaults, so the rest of the server never spells a property name.

A configuration Apache starts with, we start with, with the same meaning (issue 12: people
arrive with configs tools generated, and a server that refuses one is not a drop-in). Where
Apache silently falls back to a default on a malformed value (``Integer.getInteger``), or
reads a misspelt boolean as false (``forceSync=false`` still fsyncs), we read it the same way
and log a warning with the file, line, value and what is used (``model.ACCESSOR_PROPERTIES``
holds each property's Apache reader and default). What Apache refuses (the zoo.cfg keys
QuorumPeerConfig parses itself, a JAAS file that does not parse) we refuse with the file, line
and reason (DESIGN.md §5). The few places we stay stricter are listed in
docs/compatibility.md.

The package, by layer: `values` (ConfigError and single-value parsers), `properties` (the
Properties text format and -D items), `model` (ServerConfig), `servers` (server.N lines),
`keys` (the tables of known keys and the warnings for ignored ones), `loader` (load_config).
Names with a leading underscore are private to the package, shared between its modules.
"""

from .loader import is_standalone, load_config
from .model import DEFAULT_METRICS_PROVIDER, FOUR_LETTER_WORDS, TELNET_CLOSE, PeerAddress, ServerConfig, ServerSpec
from .properties import PropertyLine, parse_properties, parse_system_properties
from .values import ConfigError

__all__ = [
    "DEFAULT_METRICS_PROVIDER",
    "FOUR_LETTER_WORDS",
    "TELNET_CLOSE",
    "ConfigError",
    "PeerAddress",
    "PropertyLine",
    "ServerConfig",
    "ServerSpec",
    "is_standalone",
    "load_config",
    "parse_properties",
    "parse_system_properties",
]
