"""`zkserver start` as an operator runs it: config errors, ensembles, -D properties, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl
from tests.support.ports import free_port
from tests.support.servers import start_zkserver, zkserver_env


def run_cli(args: list[str], cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zkserver", *args], cwd=cwd, env=zkserver_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_bad_config_names_file_line_and_reason(tmp_path: Path) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("tickTime=2000\ndataDir=data\nclientPort=abc\n")
    done = run_cli(["start", str(cfg)], tmp_path)
    assert done.returncode != 0
    assert f"{cfg}:3" in done.stderr and "clientPort" in done.stderr


def test_one_member_ensemble_leads_alone(tmp_path: Path) -> None:
    """standaloneEnabled=false with one server line runs the quorum code path, as in Apache."""
    (tmp_path / "data").mkdir(parents=True)
    (tmp_path / "data" / "myid").write_text("1\n")
    cfg = {"standaloneEnabled": "false", "initLimit": "5", "syncLimit": "2",
           "server.1": f"127.0.0.1:{free_port()}:{free_port()}"}
    server = start_zkserver(tmp_path, cfg)
    try:
        deadline = time.monotonic() + 20
        while "Mode: leader" not in server.four_letter("srvr") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "Mode: leader" in server.four_letter("srvr")
        assert (tmp_path / "data" / "version-2" / "currentEpoch").read_text() == "1"
    finally:
        server.stop()


def test_single_server_line_runs_standalone(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(parents=True)
    (tmp_path / "data" / "myid").write_text("1\n")
    server = start_zkserver(tmp_path, {"server.1": "127.0.0.1:2888:3888"})
    try:
        assert "Mode: standalone" in server.four_letter("srvr")
    finally:
        server.stop()


def test_super_digest_from_server_jvmflags(tmp_path: Path) -> None:
    """-D items in SERVER_JVMFLAGS reach the server, as zkServer.sh passes them to the JVM."""
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha1(b"super:s3cret").digest()).decode()
    flags = f"-Dzookeeper.DigestAuthenticationProvider.superDigest=super:{digest}"
    os.environ["SERVER_JVMFLAGS"] = flags
    try:
        server = start_zkserver(tmp_path)
    finally:
        del os.environ["SERVER_JVMFLAGS"]
    try:
        owner = KazooClient(hosts=server.hosts, timeout=10)
        owner.start()
        owner.add_auth("digest", "alice:pw")
        owner.create("/locked", b"v", acl=[make_digest_acl("alice", "pw", all=True)])
        owner.stop()
        stranger = KazooClient(hosts=server.hosts, timeout=10)
        stranger.start()
        try:
            stranger.get("/locked")
            raise AssertionError("a stranger read a node that only alice may read")
        except NoAuthError:
            pass
        stranger.add_auth("digest", "super:s3cret")
        assert stranger.get("/locked")[0] == b"v"
        stranger.stop()
    finally:
        server.stop()


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    server = start_zkserver(tmp_path)
    os.kill(server.pid, signal.SIGTERM)
    server.stop()  # reaps the process (it sends SIGKILL only if SIGTERM was not enough)
    assert server.returncode == 0, server.log_tail()
    assert "shutting down" in server.log_tail()


def test_python_dash_m_lists_the_commands(tmp_path: Path) -> None:
    done = run_cli(["--help"], tmp_path)
    assert done.returncode == 0
    for command in ("start", "txnlog-dump", "snapshot-dump", "purge"):
        assert command in done.stdout


def test_a_data_dir_recovery_cannot_read_stops_start_up_with_the_reason(tmp_path: Path) -> None:
    # An OS error while recovering (here a "log file" that is a directory; a full disk while
    # recovery rewrites a file is the same path) is a clean refusal, not a traceback.
    (tmp_path / "data" / "version-2" / "log.1").mkdir(parents=True)
    (tmp_path / "zoo.cfg").write_text(f"tickTime=2000\ndataDir={tmp_path / 'data'}\nclientPort=0\n"
                                      "admin.enableServer=false\n")
    out = run_cli(["start", str(tmp_path / "zoo.cfg")], tmp_path)
    assert out.returncode == 3
    assert "cannot start: [Errno 21] Is a directory" in out.stderr and "Traceback" not in out.stderr
