"""StandaloneStub: all 16 shard cores in this process over LevelDB, no Raft.

Called only from the server's asyncio event loop, so a shard's commands and reads never run
concurrently and need no lock. Group commit without waiting: commands submitted during one
loop iteration are applied together at the end of it, one entry (index ``applied + 1``) and one
LevelDB WriteBatch per shard, which is what makes the batch rpcs cheap. Durable by default: the
shards written in an iteration are synced (one synced LevelDB write each, in parallel threads:
the disk coalesces them) before any of its calls is answered; ``fsync=False``
(``--unsafe-no-fsync``) skips that, for benchmarks only. Reads run at once and are trivially
linearizable: they see every write that was acknowledged before them.
"""

from __future__ import annotations

import asyncio
import pathlib
from concurrent.futures import ThreadPoolExecutor

from ledger import limits
from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.fatal import halt_on_apply_failure
from ledger.replication.state_machine import ShardStateMachine
from ledger.storage import LevelDBShardStore

__all__ = ["StandaloneStub", "shard_directory"]

_Pending = tuple[list[pb.Command], "asyncio.Future[list[pb.Result]]"]


def shard_directory(data_dir: pathlib.Path, shard: int) -> pathlib.Path:
    assert 0 <= shard < limits.shard_count
    return data_dir / f"shard-{shard:02d}"


class StandaloneStub:
    def __init__(self, data_dir: pathlib.Path, fsync: bool = True) -> None:
        self._fsync = fsync
        self._sync_pool = ThreadPoolExecutor(limits.shard_count, thread_name_prefix="shard-sync")
        self._machines = [
            ShardStateMachine(LevelDBShardStore(shard_directory(data_dir, shard) / "db"))
            for shard in range(limits.shard_count)
        ]
        self._pending: dict[int, list[_Pending]] = {}

    async def submit(self, shard: int, command: pb.Command, timeout_s: float) -> pb.Result:
        return (await self.submit_many(shard, [command], timeout_s))[0]

    async def submit_many(
        self, shard: int, commands: list[pb.Command], timeout_s: float
    ) -> list[pb.Result]:
        assert 0 < len(commands) <= limits.entry_commands_max
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[pb.Result]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._apply_pending)
        self._pending.setdefault(shard, []).append((commands, future))
        return await future

    def _apply_pending(self) -> None:
        pending, self._pending = self._pending, {}
        answers: list[tuple[list[_Pending], list[pb.Result]]] = []
        for shard in sorted(pending):
            for chunk in _entries(pending[shard]):
                answers.append((chunk, self._apply_entry(shard, chunk)))
        if self._fsync:  # group commit: durable before anyone is answered
            stores = [self._machines[shard].store for shard in pending]
            for _ in self._sync_pool.map(lambda store: store.sync(), stores):
                pass
        for chunk, results in answers:
            _answer(chunk, results)

    def _apply_entry(self, shard: int, chunk: list[_Pending]) -> list[pb.Result]:
        machine = self._machines[shard]
        commands = [command for commands, _ in chunk for command in commands]
        try:
            results = machine.apply(commands, machine.applied_index + 1)
            assert results is not None and len(results) == len(commands)
        except BaseException:  # noqa: BLE001 - a bug: stop, never answer from it
            halt_on_apply_failure(shard)
        return results

    async def read(self, shard: int, query: pb.Query, timeout_s: float) -> pb.Result:
        return self._machines[shard].read(query)

    async def close(self) -> None:
        self._sync_pool.shutdown()
        for machine in self._machines:
            machine.store.close()


def _answer(chunk: list[_Pending], results: list[pb.Result]) -> None:
    start = 0
    for commands_of_call, future in chunk:
        end = start + len(commands_of_call)
        if not future.done():  # the caller may have been cancelled meanwhile
            future.set_result(results[start:end])
        start = end


def _entries(calls: list[_Pending]) -> list[list[_Pending]]:
    """Consecutive calls grouped into entries of at most ``batch_commands_max`` commands (a
    single larger call is one entry of its own)."""
    entries: list[list[_Pending]] = []
    size = 0
    for call in calls:
        if entries and size + len(call[0]) <= limits.batch_commands_max:
            entries[-1].append(call)
            size += len(call[0])
        else:
            entries.append([call])
            size = len(call[0])
    return entries
