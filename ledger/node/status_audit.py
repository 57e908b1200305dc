"""How a shard's health is judged from its replicas' answers to the node API's ``Status`` rpc.

One definition for every reader of that rpc (``ledger-dev check`` and the gateway's status
page), so that they never disagree about what "has a leader" or "replicas agree" means.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ledger.pb import ledger_node_pb2 as node_pb

__all__ = ["digests_agree", "is_quorum_leader", "quorum_leaders"]


def is_quorum_leader(replica: node_pb.ShardStatus) -> bool:
    """Leads the shard *and* has quorum. A replica that still believes it leads but lost its
    quorum (cut off, or a paused old leader) cannot commit anything, so it does not count."""
    return replica.role == "leader" and replica.has_quorum


def quorum_leaders(replicas: Sequence[node_pb.ShardStatus]) -> list[node_pb.ShardStatus]:
    """The replicas that lead with quorum: a healthy shard has exactly one."""
    return [s for s in replicas if is_quorum_leader(s)]


def digests_agree(samples: Iterable[tuple[int, str]]) -> bool | None:
    """Do replicas at the same applied index hold the same data? ``samples``: (applied, digest).

    Digests are compared only between replicas at an equal applied index: a replica that is
    behind holds older data by design, which says nothing about divergence. False when two
    replicas at one index differ; True when at least one pair could be compared and all
    matched; None when no two replicas share an index (nothing to compare yet). Empty digests
    (not computed) are left out.
    """
    by_index: dict[int, set[str]] = {}
    compared = False
    for applied_index, digest in samples:
        if not digest:
            continue
        seen = by_index.setdefault(applied_index, set())
        compared = compared or bool(seen)
        seen.add(digest)
    if any(len(digests) > 1 for digests in by_index.values()):
        return False
    return True if compared else None
