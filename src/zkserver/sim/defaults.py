"""What `python -m zkserver.sim` runs unless told otherwise: the simulated clients' workload
and every checker, wired to a world.

The checkers (sim/checkers/) judge the History the clients recorded and what each member
holds at the end; `checks` turns the world's member states into theirs: the txns in a
member's logs are its committed history from the first of them on (the simulator purges
nothing, and a SNAP leaves only logs after the snapshot it installed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import Role
from .checkers import MemberState as CheckedMember
from .checkers import check_all
from .checkers.observe import tree_view
from .client import SimClient
from .member import MemberState
from .streams import Stream, StreamHandler
from .workload import Workload, WorkloadOptions

if TYPE_CHECKING:
    from .world import Violation, World

SERVING = (Role.STANDALONE, Role.LEADER, Role.FOLLOWER, Role.OBSERVER)


def workload(world: World) -> Workload:
    o = world.options
    members = [m.sid for m in world.members]

    def connector(name: str):
        def connect(member: int, handler: StreamHandler) -> Stream:
            return world.connect(name, f"m{member}", handler)
        return connect

    clients = [SimClient(i, world.scheduler, world.history, connector(name), members,
                         session_timeout=o.session_timeout_ms)
               for i, name in enumerate(world.client_names, 1)]
    return Workload(world.scheduler, clients, WorkloadOptions(ops_per_client=None))


def checked_member(state: MemberState) -> CheckedMember:
    tree = state.tree
    txns = sorted(t for t in state.txns if t[0] > state.history_start)
    complete_from = state.history_start
    serving = state.state == "up" and (state.role is None or state.role in SERVING)
    return CheckedMember(state.sid, txns, complete_from, tree_view(tree) if tree is not None else None,
                         state.digest, set(state.sessions) if tree is not None else None, serving)


def checks(world: World) -> list[Violation]:
    from .world import Violation

    members = [checked_member(s) for s in world.final_states()]
    env = world.env
    journal = sorted((zxid, body) for zxid, (_, body) in env.applied.items()) if env.applied else None
    found = [Violation("replicas", f"two members applied different txns: {c}") for c in env.conflicts]
    return found + [Violation(v.check, str(v)) for v in check_all(world.history, members, journal=journal)]
