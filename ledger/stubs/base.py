"""The one interface the gateway servicer sees: submit a command or a query to a shard.

Implementations: ``StandaloneStub`` (cores in this process) and ``ClusterStub`` (gRPC to the
shard leader, with group commit and retries). Both return ``ledger.internal.v1.Result`` values;
domain failures come back as ``Result.error``, infrastructure failures as ``LedgerError``.
"""

from __future__ import annotations

from typing import Protocol

from ledger.pb import ledger_internal_pb2 as pb

__all__ = ["LedgerCore"]


class LedgerCore(Protocol):
    async def submit(self, shard: int, command: pb.Command, timeout_s: float) -> pb.Result:
        """Apply ``command`` on ``shard`` exactly once (retries reuse its request_id)."""
        ...

    async def submit_many(
        self, shard: int, commands: list[pb.Command], timeout_s: float
    ) -> list[pb.Result]:
        """``submit`` for several commands of one shard at once; results in order."""
        ...

    async def read(self, shard: int, query: pb.Query, timeout_s: float) -> pb.Result:
        """Answer ``query`` from a state that includes every write acknowledged before."""
        ...

    async def close(self) -> None: ...
