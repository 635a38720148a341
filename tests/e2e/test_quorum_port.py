"""A member binds its quorum port only while it leads, as Apache's Leader does (checked by
hand against Apache 3.8: refused while electing and on followers, open on the leader). A
learner that dials a member that does not lead yet is then refused and retries, instead of
being accepted, dropped and sent back to LOOKING (which stretched a staggered start to
initLimit ticks and more)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.cluster import Cluster


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def test_quorum_port_is_bound_only_while_leading(tmp_path: Path) -> None:
    with Cluster(tmp_path, ["zkserver"] * 3) as cluster:
        cluster.start([1], wait=False)
        cluster.members[1].wait_ready()  # alone: it elects forever
        assert not _accepts(cluster.seats[1].quorum_port)
        cluster.start()
        leader = cluster.wait_for_quorum()
        assert {sid: _accepts(seat.quorum_port) for sid, seat in cluster.seats.items()} == \
            {sid: sid == leader for sid in cluster.seats}
        cluster.stop(leader)
        new_leader = cluster.wait_for_quorum()
        assert _accepts(cluster.seats[new_leader].quorum_port)
