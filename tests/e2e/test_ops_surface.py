"""Whitelist refusals, zkServer.sh status against zkserver, admin snapshot/restore rules, logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from tests.support.ports import free_port
from tests.support.servers import start_server, start_zkserver, zkserver_env

ZKSERVER_SH = Path("/usr/share/zookeeper/bin/zkServer.sh")


def _http(url: str, auth: str | None = None, data: bytes | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=data, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.mark.parametrize("kind", [pytest.param("apache", marks=pytest.mark.apache), "zkserver"])
def test_whitelist_refusal_text(kind: str, tmp_path: Path) -> None:
    server = start_server(kind, tmp_path, {"4lw.commands.whitelist": "ruok"})
    try:
        assert server.four_letter("mntr") == "mntr is not executed because it is not in the whitelist.\n"
        assert server.four_letter("stmk") == "stmk is not executed because it is not in the whitelist.\n"
        deadline = time.monotonic() + 20  # Apache answers ruok before its ZooKeeperServer runs
        while not (srvr := server.four_letter("srvr")).startswith("Zookeeper") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert srvr.startswith("Zookeeper version: ")  # always on (zkServer.sh needs it)
    finally:
        server.stop()


@pytest.mark.apache
def test_zkserver_sh_status_reports_zkservers_mode(tmp_path: Path) -> None:
    if not ZKSERVER_SH.exists():
        pytest.skip("zkServer.sh is not installed")
    server = start_zkserver(tmp_path, {"4lw.commands.whitelist": "ruok"})  # srvr stays on
    env = {"PATH": "/usr/bin:/bin", "ZOO_LOG_DIR": str(tmp_path)}
    try:
        out = subprocess.run(["bash", str(ZKSERVER_SH), "status", str(server.cfg_path)], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"Client port found: {server.port}. Client address: 127.0.0.1." in out.stdout
        assert "Mode: standalone" in out.stdout
        ours = subprocess.run([sys.executable, "-m", "zkserver", "status", str(server.cfg_path)],
                              env=zkserver_env(), capture_output=True, text=True, timeout=30)
        assert ours.returncode == 0
        assert ours.stdout.splitlines() == [
            f"Client port found: {server.port}. Client address: 127.0.0.1. Client SSL: false.", "Mode: standalone"]
    finally:
        server.stop()
    down = subprocess.run([sys.executable, "-m", "zkserver", "status", str(server.cfg_path)],
                          env=zkserver_env(), capture_output=True, text=True, timeout=30)
    assert down.returncode == 1
    assert down.stdout.splitlines()[-1] == "Error contacting service. It is probably not running."


def test_admin_snapshot_and_restore(tmp_path: Path) -> None:
    admin = free_port()
    cfg = {"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1", "admin.serverPort": str(admin)}
    src = start_zkserver(tmp_path / "src", {**cfg, "fsync.warningthresholdms": "0"})
    url = f"http://127.0.0.1:{admin}/commands"
    try:
        kz = KazooClient(hosts=src.hosts, timeout=10)
        kz.start()
        for i in range(5):
            kz.create(f"/node{i}", f"v{i}".encode())
        kz.stop()
        assert _http(f"{url}/snapshot")[0] == 401
        assert _http(f"{url}/snapshot", auth="digest nobody:x")[0] == 200  # world:anyone has ALL on /
        status, headers, body = _http(f"{url}/snap", auth="ip")
        if status == 429:  # Apache's snapshot limiter: one per rateLimiterIntervalInMS microseconds
            time.sleep(0.5)
            status, headers, body = _http(f"{url}/snap", auth="ip")
        assert status == 200 and headers["Content-Type"] == "application/octet-stream"
        assert int(headers["snapshot_size"]) == len(body) > 0
        assert headers["last_zxid"] == "0x0000000000000007"  # createSession, 5 creates, closeSession
        assert _http(f"{url}/restore", auth="ip")[0] == 405  # restore takes POST
        log = (src.data_dir / "zkserver.log").read_text()
        assert "fsync-ing the write ahead log" in log  # threshold 0: every fsync warns
    finally:
        src.stop()
    admin2 = free_port()
    dst = start_zkserver(tmp_path / "dst", {**cfg, "admin.serverPort": str(admin2)})
    url2 = f"http://127.0.0.1:{admin2}/commands"
    try:
        assert _http(f"{url2}/restore", data=body)[0] == 401
        status, _, reply = _http(f"{url2}/restore", auth="ip", data=body)
        assert status == 200, reply
        assert json.loads(reply)["last_zxid"] == 7
        assert _http(f"{url2}/restore", auth="ip", data=body)[0] == 429  # one per 5 minutes
        kz = KazooClient(hosts=dst.hosts, timeout=10)
        kz.start()
        assert kz.get("/node3")[0] == b"v3"
        kz.create("/after", b"1")
        kz.stop()
        dst.restart()
        kz = KazooClient(hosts=dst.hosts, timeout=10)
        kz.start()
        assert kz.get("/node4")[0] == b"v4" and kz.exists("/after")
        kz.stop()
    finally:
        dst.stop()


def test_large_watch_dump_is_chunked_and_exact(tmp_path: Path) -> None:
    """wchp over many watched paths arrives complete while other requests keep being served."""
    server = start_zkserver(tmp_path)
    try:
        kz = KazooClient(hosts=server.hosts, timeout=10)
        kz.start()
        n = 5000
        for i in range(n):
            kz.exists(f"/missing{i}", watch=lambda e: None)
        text = server.four_letter("wchp")
        paths = [line for line in text.splitlines() if line.startswith("/")]
        assert len(paths) == n
        assert server.four_letter("wchs").startswith(f"1 connections watching {n} paths")
        kz.stop()
    finally:
        server.stop()
