"""Drives transfers through their steps, and finishes the ones whose driver died.

The resolver also moves the clock of a shard that holds an expired pending hold (a ``Tick``
command) when no other write does: holds are cancelled on the shard clock, which only writes
move.

The steps and their guarantees are in ``ledger.core.transfers``; this module only sends them:
``begin`` to the source shard (for a same-shard transfer, all three steps as one command, one
Raft entry), then ``credit`` to the destination shard, then ``finish`` to the source shard.
Every step is idempotent, so resending one (a retry, a second driver, a resolver) is harmless.

**Resolver: in every gateway.** A gateway that dies between steps leaves its transfer IN_FLIGHT
on the source shard. Every gateway runs a ``TransferResolver`` that lists each shard's in-flight
transfers every ``transfer_resolve_interval_s`` and resumes those not updated for
``transfer_orphan_age_s`` (older than any live driver's call can be). We put it in the gateways,
not on the shard leaders, because the gateways already hold the routing to every shard and the
retry logic, and a node would need a client to its peers' shards; several gateways resolving
the same transfer at once only repeat idempotent steps. A transfer whose driver died is final
within about ``transfer_orphan_age_s + transfer_resolve_interval_s`` plus three step round trips
(≈ 10 s here), as long as its two shards have a quorum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from ledger import ids, limits
from ledger.pb import ledger_internal_pb2 as pb
from ledger.stubs import LedgerCore, LedgerError

__all__ = [
    "TransferDriver",
    "TransferResolver",
    "stamped_command",
    "transfer_orphan_age_s",
    "transfer_resolve_interval_s",
]

log = logging.getLogger(__name__)

transfer_resolve_interval_s = 2.0
transfer_orphan_age_s = 5.0  # > any driver's remaining work: calls are capped at 60 s, but
# a driver that is still alive only waits on retried steps
transfer_resolve_batch_max = 100  # in-flight transfers listed per shard per round
transfer_step_timeout_s = 10.0  # per step when resolving
REQUEST_ID_BYTES = 16


def stamped_command(clock_ns: Callable[[], int], **kind: Any) -> pb.Command:
    """A command as the gateway sends it: a fresh random request id (kept by every retry of
    this command) and the gateway's clock, the only clock a replica ever sees."""
    return pb.Command(request_id=os.urandom(REQUEST_ID_BYTES), now_ns=clock_ns(), **kind)


assert transfer_resolve_batch_max <= limits.page_size_max


class StepFailed(Exception):
    """A step answered with an error result (its ``pb.Error`` is attached)."""

    def __init__(self, error: pb.Error) -> None:
        super().__init__(f"{error.reason}: {error.message}")
        self.error = error


def _payload(result: pb.Result, kind: str) -> object:
    actual = result.WhichOneof("kind")
    if actual == "error":
        raise StepFailed(result.error)
    assert actual == kind, f"expected {kind}, got {actual}"
    return getattr(result, kind)


class TransferDriver:
    def __init__(self, stub: LedgerCore, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._stub = stub
        self._clock_ns = clock_ns

    def _command(self, **kind: Any) -> pb.Command:
        return stamped_command(self._clock_ns, **kind)

    async def begin(self, begin: pb.BeginTransfer, timeout_s: float) -> pb.TransferRecord:
        """Step 1 (or all three when both accounts share a shard); StepFailed on a refusal."""
        source = ids.shard_index(begin.from_account_id)
        begin.within_shard = source == ids.shard_index(begin.to_account_id)
        result = await self._stub.submit(source, self._command(begin_transfer=begin), timeout_s)
        transfer = _payload(result, "transfer")
        assert isinstance(transfer, pb.TransferRecord)
        return transfer

    async def resume(self, transfer: pb.TransferRecord, timeout_s: float) -> pb.TransferRecord:
        """Steps 2 and 3 for an in-flight transfer; the final record."""
        if transfer.status != pb.TRANSFER_STATUS_IN_FLIGHT:
            return transfer
        deadline_s = time.monotonic() + timeout_s
        credit = pb.CreditTransfer(
            to_account_id=transfer.to_account_id,
            from_account_id=transfer.from_account_id,
            debit_number=transfer.debit_number,
            amount=transfer.amount,
            description=transfer.description,
        )
        result = await self._stub.submit(
            ids.shard_index(transfer.to_account_id),
            self._command(credit_transfer=credit),
            _remaining_s(deadline_s),
        )
        decision = _payload(result, "transfer_credit")
        assert isinstance(decision, pb.TransferCreditRecord)
        finish = pb.FinishTransfer(
            from_account_id=transfer.from_account_id,
            debit_number=transfer.debit_number,
            credit=decision,
        )
        result = await self._stub.submit(
            ids.shard_index(transfer.from_account_id),
            self._command(finish_transfer=finish),
            _remaining_s(deadline_s),
        )
        final = _payload(result, "transfer")
        assert isinstance(final, pb.TransferRecord)
        assert final.status != pb.TRANSFER_STATUS_IN_FLIGHT
        return final


def _remaining_s(deadline_s: float) -> float:
    remaining_s = deadline_s - time.monotonic()
    if remaining_s <= 0:
        raise TimeoutError("no time left for the next transfer step")
    return remaining_s


class TransferResolver:
    """Finishes in-flight transfers whose driver died (see the module text)."""

    def __init__(
        self, stub: LedgerCore, driver: TransferDriver, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self._stub = stub
        self._driver = driver
        self._clock_ns = clock_ns
        self._task: asyncio.Task[None] | None = None
        # Per shard, where the next listing starts: after a full batch, the next round goes on
        # past it, so young transfers at the front never hide an orphan behind them.
        self._cursors: dict[int, pb.ListInFlightTransfers] = {}
        self.resolved = 0

    def start(self) -> None:
        assert self._task is None
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(transfer_resolve_interval_s)
            try:
                await self.resolve_once()
            except Exception:
                log.exception("resolving in-flight transfers failed")

    async def _tick(self, shard: int) -> None:
        """Move an idle shard's clock to now: its expired pending holds get cancelled."""
        command = stamped_command(self._clock_ns, tick=pb.Tick())
        try:
            await self._stub.submit(shard, command, transfer_step_timeout_s)
        except LedgerError as error:
            log.warning("moving shard %d's clock failed: %s", shard, error)

    async def resolve_once(self, orphan_age_s: float = transfer_orphan_age_s) -> int:
        """One round over every shard; the number of transfers finished."""
        finished = 0
        oldest_ns = self._clock_ns() - int(orphan_age_s * 1e9)
        for shard in range(limits.shard_count):
            listing = self._cursors.pop(shard, None) or pb.ListInFlightTransfers()
            listing.limit = transfer_resolve_batch_max
            query = pb.Query(list_in_flight_transfers=listing)
            try:
                result = await self._stub.read(shard, query, transfer_step_timeout_s)
            except LedgerError:
                continue  # that shard has no quorum now; the next round tries again
            listed = _payload(result, "transfers")
            assert isinstance(listed, pb.TransferList)
            if 0 < listed.next_hold_expiry_ns <= self._clock_ns():
                await self._tick(shard)
            if len(listed.transfers) >= transfer_resolve_batch_max:
                last = listed.transfers[-1]
                self._cursors[shard] = pb.ListInFlightTransfers(
                    after_account_id=last.from_account_id, after_debit_number=last.debit_number
                )
            for transfer in listed.transfers:
                if transfer.updated_at_ns > oldest_ns:
                    continue  # its driver may still be at work
                try:
                    await self._driver.resume(transfer, transfer_step_timeout_s)
                except (LedgerError, StepFailed, TimeoutError) as error:
                    log.warning("transfer %s not finished yet: %s", _transfer_id(transfer), error)
                    continue
                finished += 1
        self.resolved += finished
        return finished


def _transfer_id(transfer: pb.TransferRecord) -> str:
    return ids.format_transaction_id(transfer.from_account_id, transfer.debit_number)
