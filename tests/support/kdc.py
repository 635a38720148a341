"""A throwaway MIT Kerberos KDC for tests (Debian's krb5-kdc, krb5-admin-server, krb5-user).

`start_kdc(workdir)` writes its own krb5.conf and kdc.conf, creates a database in `workdir`
(`kdb5_util create -s`), adds principals and exports keytabs with `kadmin.local`, and runs
`krb5kdc -n` on 127.0.0.1 on a free port (UDP and TCP) as a child process held by PID;
`Kdc.stop()` ends it by that PID. Nothing outside `workdir` is touched: every tool runs with
KRB5_CONFIG / KRB5_KDC_PROFILE pointing at these files, and the same files go to Java
(`-Djava.security.krb5.conf`) and to zkserver.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.prereq import missing

REALM = "EXAMPLE.TEST"
SERVICE_PRINCIPAL = f"zookeeper/localhost@{REALM}"
CLIENT_PRINCIPAL = f"alice@{REALM}"
# The tools the fixture runs; a machine without them skips (and fails under CI=true).
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
ENCTYPES = "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96"  # what both MIT and the JDK accept
READY_TIMEOUT = 20.0


def tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in SBIN:
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


def kdc_available() -> bool:
    return all(tool(t) for t in TOOLS)


def skip_if_no_kdc() -> None:
    """Skip when MIT Kerberos' KDC tools are missing; in CI (CI=true) that is a failure instead."""
    if kdc_available():
        return
    absent = [t for t in TOOLS if not tool(t)]
    why = f"MIT Kerberos KDC tools missing ({', '.join(absent)}): apt-get install krb5-kdc krb5-admin-server krb5-user"
    missing(why, "CI must install them (see .ci/test)")


def free_udp_tcp_port() -> int:
    """A loopback port free for both TCP and UDP (the KDC listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no loopback port free for both TCP and UDP")


@dataclass(eq=False)
class Kdc:
    workdir: Path
    port: int
    realm: str = REALM
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def krb5_conf(self) -> Path:
        return self.workdir / "krb5.conf"

    @property
    def kdc_conf(self) -> Path:
        return self.workdir / "kdc.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "kdc.log"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for MIT tools and libraries using this KDC."""
        env = dict(os.environ)
        env.update(KRB5_CONFIG=str(self.krb5_conf), KRB5_KDC_PROFILE=str(self.kdc_conf),
                   KRB5CCNAME=f"FILE:{self.workdir / 'ccache'}", KRB5RCACHEDIR=str(self.workdir))
        env.update(extra)
        return env

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        exe = tool(argv[0]) or argv[0]
        proc = subprocess.run([exe, *argv[1:]], env=self.env(), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kadmin(self, query: str) -> str:
        return self.run("kadmin.local", "-r", self.realm, "-q", query).stdout

    def add_principal(self, name: str, keytab: Path | None = None) -> None:
        """A principal with random keys; exported to `keytab` if given (which re-randomizes them)."""
        self.kadmin(f"addprinc -randkey {name}")
        if keytab is not None:
            self.ktadd(name, keytab)

    def ktadd(self, name: str, keytab: Path) -> None:
        """Export the principal's keys to `keytab`; new random keys, so older keytabs go stale."""
        self.kadmin(f"ktadd -k {keytab} {name}")

    def kinit(self, principal: str, keytab: Path, ccache: Path) -> None:
        proc = self.run("kinit", "-k", "-t", str(keytab), "-c", f"FILE:{ccache}", principal, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"kinit {principal} failed: {proc.stderr.strip()}")

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [tool("krb5kdc") or "krb5kdc", "-n", "-r", self.realm, "-P", str(self.workdir / "kdc.pid")],
            env=self.env(), stdin=subprocess.DEVNULL, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"krb5kdc exited: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"krb5kdc not listening on 127.0.0.1:{self.port}: {self.log_tail()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def __enter__(self) -> Kdc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_confs(workdir: Path, port: int, realm: str = REALM) -> None:
    # udp_preference_limit = 1: MIT and the JDK both use TCP (no UDP retries to wait out);
    # no DNS anywhere: the realm and the KDC come from this file, host names stay as given.
    (workdir / "krb5.conf").write_text(f"""\
[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    default_tkt_enctypes = {ENCTYPES}
    default_tgs_enctypes = {ENCTYPES}
    permitted_enctypes = {ENCTYPES}
    ticket_lifetime = 1h
    forwardable = false

[realms]
    {realm} = {{
        kdc = 127.0.0.1:{port}
    }}

[domain_realm]
    localhost = {realm}
    .localhost = {realm}
""")
    (workdir / "kdc.conf").write_text(f"""\
[kdcdefaults]
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}

[realms]
    {realm} = {{
        database_name = {workdir / 'principal'}
        key_stash_file = {workdir / 'stash'}
        acl_file = {workdir / 'kadm5.acl'}
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        max_life = 1h
    }}

[logging]
    kdc = FILE:{workdir / 'kdc.log'}
""")
    (workdir / "kadm5.acl").write_text("")


def start_kdc(workdir: Path, realm: str = REALM) -> Kdc:
    """Create the realm's database in `workdir` and start its KDC; the caller stops it."""
    skip_if_no_kdc()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_udp_tcp_port()
    write_confs(workdir, port, realm)
    kdc = Kdc(workdir, port, realm)
    kdc.run("kdb5_util", "-r", realm, "-P", "master-password-for-tests", "create", "-s")
    kdc.start()
    try:
        kdc.wait_ready()
    except Exception:
        kdc.stop()
        raise
    return kdc
