"""What every node of an embedded launcher shares: its settings, as zoo.cfg keys and -D properties."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from ..cli import server_options
from ..config import is_standalone, load_config
from ..shell.server import ServerOptions

log = logging.getLogger("zkserver.embedded")

Mode = Literal["thread", "loop", "subprocess"]
Storage = Literal["memory", "disk"]

# zoo.cfg keys every embedded server gets unless the caller overrides them (None drops a key).
DEFAULT_CONFIG: dict[str, object] = {
    "tickTime": 2000,  # Apache's zoo_sample.cfg: session timeouts 4 s .. 40 s
    "clientPortAddress": "127.0.0.1",
    "maxClientCnxns": 0,  # tests open many sessions from one address
    "4lw.commands.whitelist": "*",
    "admin.enableServer": False,
}
# What an ensemble's members get on top (Apache's zoo_sample.cfg again): a follower that hears
# nothing from its leader for syncLimit ticks (10 s) gives up on it.
ENSEMBLE_CONFIG: dict[str, object] = {
    "initLimit": 10,
    "syncLimit": 5,
}
# -D properties of an ensemble's members. A member that finds no quorum doubles the interval
# between its election notifications up to this cap (Apache's default: 60 s); after heal() it
# rejoins at its next notification, so the cap bounds how long that takes.
ENSEMBLE_PROPERTIES: dict[str, object] = {
    "zookeeper.fastleader.maxNotificationInterval": 1000,
}
MEMORY_PROPERTY = "zkserver.storage"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 3
SessionRef = int | tuple[int, bytes]


class ZkServerError(RuntimeError):
    """The server did not start in time, or an operation does not fit its state."""


def cfg_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Plan:
    """What every node of one launcher shares: mode, zoo.cfg keys, -D properties, directories."""

    def __init__(self, mode: Mode, nodes: int, port: int, storage: Storage | None,
                 data_dir: str | os.PathLike[str] | None, config: Mapping[str, object] | None,
                 properties: Mapping[str, object] | None, settings: Mapping[str, object],
                 start_timeout: float, observers: int = 0) -> None:
        if mode not in ("thread", "loop", "subprocess"):
            raise ValueError(f"mode={mode!r}: expected 'thread', 'loop' or 'subprocess'")
        _check_size(nodes, observers)
        ensemble = nodes > 1
        cfg = {**DEFAULT_CONFIG, **(ENSEMBLE_CONFIG if ensemble else {}), **(config or {}), **settings}
        if ensemble:
            _check_ensemble_keys(cfg)
        if "clientPort" in cfg:
            if port:
                raise ValueError("give the port either as port= or as clientPort, not both")
            port = int(str(cfg.pop("clientPort")))
        if cfg.get("dataDir") is not None:
            if data_dir is not None:
                raise ValueError("give the data dir either as data_dir= or as dataDir, not both")
            data_dir = str(cfg["dataDir"])
        cfg.pop("dataDir", None)
        if storage is None:
            storage = "memory" if data_dir is None and not ensemble else "disk"
        if storage not in ("memory", "disk"):
            raise ValueError(f"storage={storage!r}: expected 'memory' or 'disk'")
        if storage == "memory" and data_dir is not None:
            raise ValueError("data_dir= asks for storage='disk'")
        if storage == "memory" and ensemble:
            raise ValueError("an ensemble member keeps its txn log on disk: storage='memory' is for nodes=1")
        props = {key: cfg_text(value) for key, value in {**(ENSEMBLE_PROPERTIES if ensemble else {}),
                                                          **(properties or {})}.items() if value is not None}
        if storage == "memory":
            props[MEMORY_PROPERTY] = "memory"  # the CLI's switch: the txn log stays in memory
        self.mode: Mode = mode
        self.nodes = nodes
        self.observers = observers
        self.port = port
        self.storage: Storage = storage
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.config = {key: cfg_text(value) for key, value in cfg.items() if value is not None}
        self.properties = props
        self.start_timeout = start_timeout

    @property
    def address(self) -> str:
        addr = self.config.get("clientPortAddress")
        return "127.0.0.1" if addr in (None, "0.0.0.0", "::") else addr

    def write_cfg(self, workdir: Path, data_dir: Path, port: int, extra: Sequence[str] = ()) -> Path:
        """workdir/zoo.cfg: our keys, the client port, the data dir, then `extra` lines (server.N...)."""
        lines = [f"{key}={value}" for key, value in self.config.items()]
        lines += [f"clientPort={port}", f"dataDir={data_dir}", *extra]
        path = workdir / "zoo.cfg"
        path.write_text("\n".join(lines) + "\n")
        return path

    def server_options(self, workdir: Path, data_dir: Path) -> ServerOptions:
        """The ServerOptions `python -m zkserver start` would build from our zoo.cfg."""
        return self.options_from(self.write_cfg(workdir, data_dir, self.port), ensemble=False)

    def options_from(self, path: Path, ensemble: bool) -> ServerOptions:
        """Load a zoo.cfg we wrote, as `python -m zkserver start` would, into ServerOptions."""
        cfg = load_config(str(path), dict(self.properties))
        if is_standalone(cfg) == ensemble:
            raise ZkServerError(f"{path} describes {'a standalone server' if ensemble else 'an ensemble'}")
        for warning in cfg.warnings:
            log.warning("%s", warning)
        return server_options(cfg)


def _check_size(nodes: int, observers: int) -> None:
    if nodes < 1:
        raise ValueError(f"nodes={nodes}: at least one")
    if observers < 0:
        raise ValueError(f"observers={observers}: none or more")
    if observers and nodes == 1:
        raise ValueError("observers join an ensemble: give nodes=2 or more (nodes=1 is a standalone server)")


def _check_ensemble_keys(cfg: Mapping[str, object]) -> None:
    # The launcher writes each member's identity and its view of the others itself.
    for key in cfg:
        if key.startswith("server.") or key in ("peerType", "myid"):
            raise ValueError(f"{key}: the ensemble launcher writes the members' server lines and roles itself")
