"""Logging set-up: stderr plus a size-rotated file in the log dir, as Apache's log4j ROLLINGFILE.

The log dir is --log-dir, else the zookeeper.log.dir property, else $ZOO_LOG_DIR, else the
dataLogDir; the file is zookeeper.log.file or zkserver.log (10 MB x 10 files, log4j's defaults).
Messages use %-style arguments throughout the server, so nothing is formatted for a level that
is off.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping

FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 10


def setup_stderr(level: str) -> None:
    """The console handler only (before the config is known, and for the tool commands)."""
    logging.basicConfig(level=level.upper(), format=FORMAT, stream=sys.stderr, force=True)


def log_file_path(log_dir: str | None, props: Mapping[str, str], data_log_dir: str) -> str:
    directory = log_dir or props.get("zookeeper.log.dir") or os.environ.get("ZOO_LOG_DIR") or data_log_dir
    return os.path.join(directory, props.get("zookeeper.log.file") or "zkserver.log")


def add_file_handler(path: str) -> str | None:
    """Also log to a rotating file at `path`; the reason it could not, or None."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS)
    except OSError as e:
        return str(e)
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger().addHandler(handler)
    return None
