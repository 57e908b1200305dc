"""StandaloneStub: all 16 shard cores in this process over LevelDB, no Raft.

Called only from the server's asyncio event loop, so commands and reads of a shard never run
concurrently and need no lock; each command is applied synchronously (tens of microseconds) as
its own entry with index ``applied + 1``. Reads are trivially linearizable: they see every write
that returned before them.
"""

from __future__ import annotations

import pathlib

from ledger import limits
from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.state_machine import ShardStateMachine
from ledger.storage import LevelDBShardStore

__all__ = ["StandaloneStub", "shard_directory"]


def shard_directory(data_dir: pathlib.Path, shard: int) -> pathlib.Path:
    assert 0 <= shard < limits.shard_count
    return data_dir / f"shard-{shard:02d}"


class StandaloneStub:
    def __init__(self, data_dir: pathlib.Path) -> None:
        self._machines = [
            ShardStateMachine(LevelDBShardStore(shard_directory(data_dir, shard) / "db"))
            for shard in range(limits.shard_count)
        ]

    async def submit(self, shard: int, command: pb.Command, timeout_s: float) -> pb.Result:
        machine = self._machines[shard]
        results = machine.apply([command], machine.applied_index + 1)
        assert results is not None and len(results) == 1
        return results[0]

    async def read(self, shard: int, query: pb.Query, timeout_s: float) -> pb.Result:
        return self._machines[shard].read(query)

    async def close(self) -> None:
        for machine in self._machines:
            machine.store.close()
