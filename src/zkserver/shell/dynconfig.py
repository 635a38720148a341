"""A member's dynamic configuration files, as Apache 3.8 keeps them (reconfigEnabled only).

Theory of operation. The peer reports configs through the `ConfigStore` interface
(quorum/context.py); this one writes what Apache's QuorumPeer writes, with the texts
quorum/reconfig.py builds, each file written whole to a temporary name and renamed over the
old one (Apache's AtomicFileWritingIdiom):

- at start-up, a distributed member with reconfigEnabled whose zoo.cfg still holds its server
  lines copies zoo.cfg to zoo.cfg.bak (QuorumPeerConfig.backupOldConfig);
- a proposed config: zoo.cfg.dynamic.next, with its version line;
- an activated config: zoo.cfg.dynamic.<hex version>, then zoo.cfg rewritten to point at it
  (dynamicConfigFile=, absolute path) without its membership keys; the .next file goes once
  the config it held is the one activated.

So a member restarted after a reconfig (of either kind: zkserver or Apache) reads the config in
force from its dynamicConfigFile, and a proposal it logged but never saw committed from .next.
A write that fails is logged, as Apache logs it; the member goes on with the config in memory.
"""

from __future__ import annotations

import logging
import os

from ..quorum.context import Verifier
from ..quorum.reconfig import (
    dynamic_file_name,
    dynamic_file_text,
    edited_static_config,
    next_file_name,
    verifier_from_string,
)
from ..storage.disk import OS_DISK, replace_durably

log = logging.getLogger("zkserver.ensemble")


class DynamicConfigFiles:
    """The ConfigStore of a member started from `config_path` (zoo.cfg)."""

    def __init__(self, config_path: str, my_sid: int) -> None:
        self.config_path = os.path.abspath(config_path)
        self.my_sid = my_sid
        self.last_proposed = -1

    def backup_static(self) -> None:
        """zoo.cfg.bak: the static config as it was, before its first rewrite."""
        try:
            with open(self.config_path, "rb") as f:
                replace_durably(OS_DISK, self.config_path + ".bak", f.read())
        except OSError as e:
            log.error("could not back up %s: %s", self.config_path, e)

    def pending(self) -> Verifier | None:
        """The proposed config a previous run left in .next (Apache reads it at start-up)."""
        try:
            with open(next_file_name(self.config_path), encoding="utf-8") as f:
                return verifier_from_string(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring %s: %s", next_file_name(self.config_path), e)
            return None

    def proposed(self, verifier: Verifier) -> None:
        self.last_proposed = verifier.version
        try:
            text = dynamic_file_text(verifier, keep_version=True)  # type: ignore[arg-type]
            replace_durably(OS_DISK, next_file_name(self.config_path), text.encode())
        except OSError as e:
            log.error("Error writing next dynamic config file to disk: %s", e)

    def activated(self, verifier: Verifier) -> None:
        dynamic = dynamic_file_name(self.config_path, verifier.version)
        me = verifier.members.get(self.my_sid)
        erase_client = me is not None and me.client_port is not None
        try:
            replace_durably(OS_DISK, dynamic, dynamic_file_text(verifier, keep_version=False).encode())  # type: ignore[arg-type]
            with open(self.config_path, encoding="latin-1") as f:
                static = f.read()
            edited = edited_static_config(static, os.path.realpath(dynamic), erase_client)
            replace_durably(OS_DISK, self.config_path, edited.encode())
            if verifier.version >= self.last_proposed:
                os.remove(next_file_name(self.config_path))
        except FileNotFoundError:
            pass  # no .next to remove
        except OSError as e:
            log.error("Error writing the dynamic config files for version 0x%x: %s", verifier.version, e)
