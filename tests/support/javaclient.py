"""Drive Apache's Java ZooKeeper client (3.8) from tests: ZkDriver.java runs a script of commands.

kazoo cannot send TTL/container creates, addWatch, removeWatches/checkWatches, multiRead,
getEphemerals, getAllChildrenNumber, whoAmI, nor re-arm watches with setWatches/setWatches2 after a
reconnect. The Java client can; ``run_script`` runs it against any server and returns its output
as parsed JSON lines, so the same script can be compared between Apache ZooKeeper and zkserver
(``compare_runs``).

Script language (one command per line, whitespace-separated tokens; '#' lines are comments).
A line may start with ``@NAME`` to run in session NAME (default ``main``); each session has its own
event queue.

  connect [TIMEOUT_MS] [proxy]      open the session (ZooKeeperAdmin), wait for SyncConnected.
                                    ``proxy``: connect through a TCP proxy in the driver, for
                                    ``partition``/``heal``. Result: sessionId, sessionTimeout.
  close
  create PATH DATA MODE [TTL] [acl=SPEC]   create(path, data, acl, mode, stat, ttl): create2,
                                    createContainer (19) or createTTL (21). Result: path, stat.
  delete PATH [VERSION]
  exists PATH [watch|w=NAME]        ``watch`` = the default watcher; ``w=NAME`` = a named watcher
  get PATH [watch|w=NAME]           object (the same NAME is the same object). Result: data, stat.
  set PATH DATA [VERSION]
  getChildren PATH [watch|w=NAME]   opcode 8; children are sorted.
  getChildren2 PATH [watch|w=NAME]  opcode 12; children + stat.
  getAllChildrenNumber PATH         -> count
  getEphemerals [PREFIX]            -> ephemerals (sorted)
  addWatch PATH PERSISTENT|PERSISTENT_RECURSIVE [w=NAME]
  removeWatches PATH Children|Data|Any [w=NAME] [local]   removeWatches(path, watcher, ...):
                                    checkWatches (17); default watcher unless w=NAME.
  removeAllWatches PATH Children|Data|Any [local]         removeAllWatches: removeWatches (18).
  multi OP | OP | ...               ops: create PATH DATA MODE [TTL], delete PATH [V],
  multiRead OP | OP | ...           set PATH DATA [V], check PATH V, get PATH, getChildren PATH.
                                    Only read ops -> multiRead (22). Result: results[] per op.
  whoAmI                            -> clientInfo [{authScheme, user}]
  sync PATH
  addAuth SCHEME AUTH               e.g. ``addAuth digest user:pass``
  setACL PATH SPEC [VERSION] / getACL PATH
  getConfig [watch|w=NAME]
  reconfig JOINING LEAVING MEMBERS [FROM_CONFIG]   ``-`` = null
  sleep MS
  events                            print and drain this session's queued watch events; first
                                    waits until the client's EventThread has delivered all it
                                    has received (a local callback queued behind them)
  waitevents N [TIMEOUT_MS]         block until N events are queued (error Timeout otherwise);
                                    use it for notifications caused by another session
  waitstate STATE [TIMEOUT_MS] / waitconnected [TIMEOUT_MS]
  dropconnection                    close the client's socket (reflection on ClientCnxn's
                                    testableCloseSocket); the client reconnects at once
  server                            -> server: the host:port the session is connected to now
  partition / heal                  (proxy sessions) cut the connection and refuse reconnects /
                                    accept them again; the session survives if healed in time.

DATA tokens: ``-`` empty, ``null``, ``hex:0aff``, ``b64:...``, ``str:TEXT``, or literal text.
ACL SPEC: ``open`` (default), ``creator``, ``read``, or ``scheme:id:perms,...`` with perms as
``cdrwa`` letters or an int; ``digestpw:user:pass:perms`` hashes the password.
Tokens ``local``, ``proxy`` and anything starting ``w=`` / ``acl=`` are options everywhere.

Output: one JSON object per command ``{line, text, session, cmd, ok, ...}``; failures carry
``error`` (KeeperException.Code name or exception class) and ``code``. Commands that talk to the
server carry ``lastZxid``, the client's last seen zxid after the reply (ClientCnxn.getLastZxid).
``events`` prints one ``{event, state, path, watcher, session}`` object per event before its
result. State events (type None) are recorded from the default watcher only, and only on a
change. Client-side orders that mean nothing are made canonical: adjacent events with the same
(type, state, path) — one notification handed to several watchers — are sorted by watcher name,
and adjacent watch-removed events of one path by (type, watcher); children, ephemerals and
whoAmI's clientInfo are sorted.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.support.prereq import missing

SOURCE = Path(__file__).resolve().parent / "java" / "ZkDriver.java"
MAIN_CLASS = "ZkDriver"
JAR_DIR = Path(os.environ.get("ZKDRIVER_JAR_DIR", "/usr/share/java"))
# The client needs only these; zookeeper.jar's manifest Class-Path names many more (Jetty,
# Jackson, Netty...) that the NIO client never loads. slf4j-nop keeps the client quiet (and
# avoids SLF4J's "no binding" warning); ZKDRIVER_LOG=1 swaps in slf4j-simple on stderr.
CLIENT_JARS = ("zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar")
JVM_OPTS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256m")
DEFAULT_TIMEOUT = 60.0


class DriverError(RuntimeError):
    """The Java driver failed to compile, crashed, timed out or printed something unparsable."""


# --------------------------------------------------------------------------- environment


def java_available() -> bool:
    """True when java, javac and the client jars are all present."""
    tools = all(shutil.which(tool) for tool in ("java", "javac"))
    return tools and all((JAR_DIR / jar).exists() for jar in CLIENT_JARS)


def require_java() -> None:
    """Skip the calling test when Java or the jars are missing; under CI=true fail instead."""
    if java_available():
        return
    why = f"javac/java or the ZooKeeper client jars in {JAR_DIR} are missing"
    missing(why, "CI must install them")


def _logger_jar() -> str:
    return "slf4j-simple.jar" if os.environ.get("ZKDRIVER_LOG") else "slf4j-nop.jar"


def client_classpath() -> str:
    """The jars the driver compiles and runs against (without the driver's own class dir)."""
    jars = [*CLIENT_JARS, _logger_jar()]
    return os.pathsep.join(str(JAR_DIR / jar) for jar in jars if (JAR_DIR / jar).exists())


# --------------------------------------------------------------------------- build


def compile_java(source: Path, classpath: str) -> Path:
    """Compile one Java source against `classpath` once (cached by source and classpath hash);
    returns the class directory."""
    digest = hashlib.sha256(source.read_bytes())
    digest.update(classpath.encode())
    target = Path(tempfile.gettempdir()) / f"{source.stem.lower()}-{digest.hexdigest()[:16]}"
    if (target / f"{source.stem}.class").exists():
        return target
    staging = Path(tempfile.mkdtemp(prefix=f"{source.stem.lower()}-build-"))
    cmd = ["javac", "-nowarn", "-encoding", "UTF-8", "-d", str(staging), "-cp", classpath, str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise DriverError(f"javac failed ({proc.returncode}):\n{proc.stderr}")
    try:
        staging.rename(target)  # atomic; another worker may have won the race
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build() -> Path:
    """Compile ZkDriver.java once; returns the class directory."""
    return compile_java(SOURCE, client_classpath())


# --------------------------------------------------------------------------- run


def run_script(hosts: str, commands: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    """Run ``commands`` through the Java client against ``hosts``; returns the parsed output lines."""
    require_java()
    classpath = os.pathsep.join([str(build()), client_classpath()])
    argv = ["java", *JVM_OPTS, "-cp", classpath, MAIN_CLASS, hosts]
    script = "\n".join(commands) + "\n"
    try:
        proc = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DriverError(f"driver timed out after {timeout} s; output so far:\n{exc.stdout}") from exc
    if proc.returncode != 0:
        raise DriverError(f"driver exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return _parse_lines(proc.stdout, proc.stderr)


def _parse_lines(stdout: str, stderr: str) -> list[dict[str, Any]]:
    out = []
    for raw in stdout.splitlines():
        try:
            out.append(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise DriverError(f"unparsable driver line {raw!r}\nstderr:\n{stderr}") from exc
    return out


# --------------------------------------------------------------------------- reading output


def is_event(record: dict[str, Any]) -> bool:
    return "event" in record


def results(out: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The command results (no events), in script order."""
    return [r for r in out if not is_event(r)]


def step(out: Sequence[dict[str, Any]], text: str, nth: int = 0) -> dict[str, Any]:
    """The result of the ``nth`` command whose script line is exactly ``text``."""
    hits = [r for r in results(out) if r["text"] == text.strip()]
    if len(hits) <= nth:
        raise KeyError(f"no result #{nth} for command {text!r}")
    return hits[nth]


def events_of(out: Sequence[dict[str, Any]], text: str = "events", nth: int = 0) -> list[tuple[str, ...]]:
    """(event, state, path, watcher) of the events printed by the ``nth`` ``text`` command."""
    target = step(out, text, nth)
    collected: list[tuple[str, ...]] = []
    for record in out:
        if record is target:
            return collected
        if is_event(record):
            collected.append((record["event"], record["state"], record["path"], record["watcher"]))
        else:
            collected = []
    raise AssertionError("unreachable: step() found the record")


def all_ok(out: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failed results (empty when every command succeeded)."""
    return [r for r in results(out) if not r["ok"]]


# --------------------------------------------------------------------------- normalize / compare

TIME_KEYS = frozenset({"ctime", "mtime"})
SESSION_KEYS = frozenset({"ephemeralOwner", "sessionId"})


def session_names(out: Iterable[dict[str, Any]]) -> dict[int, str]:
    """sessionId -> "<session NAME>" for every successful connect (NAME#k if NAME reconnected)."""
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for r in results(out):
        if r["cmd"] == "connect" and r["ok"]:
            count = seen[r["session"]] = seen.get(r["session"], 0) + 1
            suffix = f"#{count}" if count > 1 else ""
            names[r["sessionId"]] = f"<session {r['session']}{suffix}>"
    return names


def normalize(out: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace wall-clock times and session ids; zxids, versions, paths and codes stay exact.

    A nonzero ctime/mtime becomes "<time>" (0, as on the root node, is kept). Session ids in
    sessionId and ephemeralOwner become the script's session name; other owners (0, or a value
    no script session had) are kept as they are.
    """
    records = list(out)
    names = session_names(records)
    return [_normalize_value(r, names) for r in records]


def _normalize_value(value: Any, names: dict[int, str], key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _normalize_value(v, names, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize_value(v, names) for v in value]
    if key in TIME_KEYS and isinstance(value, int) and value != 0:
        return "<time>"
    if key in SESSION_KEYS and value in names:
        return names[value]
    return value


def compare_runs(
    apache_out: Sequence[dict[str, Any]],
    zk_out: Sequence[dict[str, Any]],
    labels: tuple[str, str] = ("apache", "zkserver"),
) -> None:
    """Assert that two runs of one script are equal after ``normalize``; explain the difference."""
    left, right = normalize(apache_out), normalize(zk_out)
    if left == right:
        return
    raise AssertionError(describe_difference(left, right, labels))


def describe_difference(
    left: Sequence[dict[str, Any]], right: Sequence[dict[str, Any]], labels: tuple[str, str]
) -> str:
    """First differing record with the differing fields, then a unified diff of all records."""
    parts = [f"Java client outputs differ ({labels[0]} vs {labels[1]}, normalized):"]
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            where = a.get("text", a.get("event"))
            parts.append(f"first difference at output record {index} ({where!r}):")
            parts.extend(f"  {path}: {labels[0]}={x!r} {labels[1]}={y!r}" for path, x, y in field_diff(a, b))
            break
    else:
        parts.append(f"one output is a prefix of the other ({len(left)} vs {len(right)} records)")
    diff = difflib.unified_diff(
        [json.dumps(r) for r in left],
        [json.dumps(r) for r in right],
        fromfile=labels[0],
        tofile=labels[1],
        lineterm="",
        n=2,
    )
    parts.append("\n".join(diff))
    return "\n".join(parts)


_MISSING = "<missing>"


def field_diff(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, a value, b value) for every leaf where a and b differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in list(a) + [k for k in b if k not in a]:
            found += field_diff(a.get(key, _MISSING), b.get(key, _MISSING), f"{path}.{key}" if path else key)
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        found = []
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            found += field_diff(x, y, f"{path}[{index}]")
        return found
    return [] if a == b else [(path or "<record>", a, b)]
