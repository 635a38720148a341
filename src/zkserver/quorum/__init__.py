"""The ensemble's pure state machines: election, the leader's and the learner's Zab, the peer
that picks the role. No sockets, clocks or files here: see docs/architecture.md."""
