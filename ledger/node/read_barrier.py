"""Linearizable reads, batched: one proof of leadership (a "barrier") serves many reads.

A read may only be answered after a proof *requested after the read arrived* has completed on
this leader: ``ShardReplica.confirm_read``, a ReadIndex round (``replication.read_index``): a
majority acknowledged, in this leader's term, a probe sent after the request, and everything
committed before it has been applied here. So a deposed or paused leader never answers with
stale data. Reads that arrive while a proof is in flight wait for the next one; a proof that
does not complete within ``barrier_timeout_s`` fails its readers (the gateway retries
elsewhere) and unblocks the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ledger.replication.raft_group import EntryCallback, EntryFate

__all__ = ["BarrierFailed", "ReadBarrier"]

barrier_timeout_s = 2.0
readers_waiting_max = 10_000


class BarrierFailed(Exception):
    """The barrier did not commit: leadership lost, no quorum, or overload."""


class ReadBarrier:
    def __init__(self, submit_barrier: Callable[[EntryCallback], None]) -> None:
        """``submit_barrier`` asks for a proof (``ShardReplica.confirm_read``)."""
        self._submit_barrier = submit_barrier
        self._waiting: list[asyncio.Future[None]] = []
        self._in_flight = False
        self._generation = 0
        self._timer: asyncio.TimerHandle | None = None

    async def wait(self) -> None:
        if len(self._waiting) >= readers_waiting_max:
            raise BarrierFailed("too many reads waiting")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append(future)
        if not self._in_flight:
            self._start(loop)
        await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._waiting = self._waiting, []
        self._in_flight = True
        self._generation += 1
        generation = self._generation

        def on_applied(_result: Any, fate: EntryFate) -> None:  # tick thread
            failure = None if fate is EntryFate.APPLIED else f"not committed ({fate.value})"
            loop.call_soon_threadsafe(self._finish, generation, batch, failure)

        self._timer = loop.call_later(
            barrier_timeout_s, self._finish, generation, batch, "not committed in time"
        )
        self._submit_barrier(on_applied)

    def _finish(
        self, generation: int, batch: list[asyncio.Future[None]], failure: str | None
    ) -> None:
        """Answer one barrier's readers: all released (``failure`` None) or all failed."""
        if generation != self._generation or not self._in_flight:
            return  # a late callback of a barrier that already timed out
        self._in_flight = False
        if self._timer is not None:
            self._timer.cancel()
        for future in batch:
            if future.done():
                continue
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(BarrierFailed(failure))
        if self._waiting:
            self._start(asyncio.get_running_loop())
