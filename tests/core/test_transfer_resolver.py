"""The gateway's TransferResolver finishes transfers whose driver died, concurrently and safely.

Goal: a transfer left after ``begin`` (or after ``credit``) by a dead driver is finished by a
resolver round; two resolvers racing on the same transfers finish each exactly once; a transfer
still being driven (updated recently) is left alone. Method: the real ``LedgerApi``, driver and
resolver over an in-process ``StandaloneStub`` (LevelDB in a temp dir), no network.
"""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from ledger import ids
from ledger.gateway import transfers as transfers_module
from ledger.gateway.servicer import LedgerApi
from ledger.gateway.transfers import TransferResolver
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_internal_pb2 as pb
from ledger.stubs.standalone import StandaloneStub

TIMEOUT_S = 5.0


async def two_accounts_on_different_shards(ledger: LedgerApi) -> tuple[str, str]:
    source = (await ledger.create_account(api.CreateAccountRequest(), TIMEOUT_S)).account.id
    while True:
        target = (await ledger.create_account(api.CreateAccountRequest(), TIMEOUT_S)).account.id
        if ids.shard_index(ids.parse_account_id(target)) != ids.shard_index(
            ids.parse_account_id(source)
        ):
            return str(source), str(target)


async def balances(ledger: LedgerApi, account_id: str) -> tuple[int, int]:
    account = (
        await ledger.get_account(api.GetAccountRequest(account_id=account_id), TIMEOUT_S)
    ).account
    return account.available_balance, account.settled_balance


async def scenario(data_dir: pathlib.Path, died_after: str) -> None:
    stub = StandaloneStub(data_dir, fsync=False)
    ledger = LedgerApi(stub)
    try:
        source, target = await two_accounts_on_different_shards(ledger)
        await ledger.create_transaction(
            api.CreateTransactionRequest(account_id=source, amount=100, settled=True), TIMEOUT_S
        )
        begun = await ledger.transfers.begin(
            pb.BeginTransfer(
                from_account_id=ids.parse_account_id(source),
                to_account_id=ids.parse_account_id(target),
                amount=40,
            ),
            TIMEOUT_S,
        )
        assert begun.status == pb.TRANSFER_STATUS_IN_FLIGHT
        if died_after == "credit":  # the driver credited, then died before finishing
            credit = pb.CreditTransfer(
                to_account_id=begun.to_account_id,
                from_account_id=begun.from_account_id,
                debit_number=begun.debit_number,
                amount=40,
            )
            await stub.submit(
                ids.shard_index(begun.to_account_id),
                pb.Command(request_id=b"c" * 16, now_ns=1, credit_transfer=credit),
                TIMEOUT_S,
            )
        assert await balances(ledger, source) == (60, 100)  # held

        patient = TransferResolver(stub, ledger.transfers)
        assert await patient.resolve_once() == 0  # just begun: its driver may be alive

        racing = [TransferResolver(stub, ledger.transfers) for _ in range(2)]
        finished = await asyncio.gather(*(r.resolve_once(orphan_age_s=0) for r in racing))
        assert sum(finished) >= 1
        transfer_id = ids.format_transaction_id(begun.from_account_id, begun.debit_number)
        final = (
            await ledger.get_transfer(api.GetTransferRequest(transfer_id=transfer_id), TIMEOUT_S)
        ).transfer
        assert final.status == api.TRANSFER_STATUS_COMPLETED
        assert await balances(ledger, source) == (60, 60)
        assert await balances(ledger, target) == (40, 40)  # credited once, whoever raced
        assert await racing[0].resolve_once(orphan_age_s=0) == 0  # nothing left in flight
    finally:
        await stub.close()


def test_a_transfer_left_after_begin_is_finished(tmp_path: pathlib.Path) -> None:
    asyncio.run(scenario(tmp_path, died_after="begin"))


def test_a_transfer_left_after_credit_is_finished(tmp_path: pathlib.Path) -> None:
    asyncio.run(scenario(tmp_path, died_after="credit"))


async def young_transfer_in_front(data_dir: pathlib.Path) -> None:
    clock = {"ns": 0}
    stub = StandaloneStub(data_dir, fsync=False)
    ledger = LedgerApi(stub, clock_ns=lambda: clock["ns"])
    try:
        source, target = await two_accounts_on_different_shards(ledger)
        await ledger.create_transaction(
            api.CreateTransactionRequest(account_id=source, amount=100, settled=True), TIMEOUT_S
        )
        begin = pb.BeginTransfer(
            from_account_id=ids.parse_account_id(source),
            to_account_id=ids.parse_account_id(target),
            amount=10,
        )
        clock["ns"] = 1_000 * 10**9
        same = pb.BeginTransfer()
        same.CopyFrom(begin)
        young = await ledger.transfers.begin(same, TIMEOUT_S)  # its driver is at work: first
        clock["ns"] = 1
        orphan = await ledger.transfers.begin(begin, TIMEOUT_S)  # a dead driver's, long ago
        assert young.debit_number < orphan.debit_number
        clock["ns"] = 1_002 * 10**9
        resolver = TransferResolver(stub, ledger.transfers, clock_ns=lambda: clock["ns"])
        rounds = [await resolver.resolve_once() for _ in range(3)]
        assert sum(rounds) == 1  # the orphan, found past the young one
        final = await ledger.get_transfer(
            api.GetTransferRequest(
                transfer_id=ids.format_transaction_id(orphan.from_account_id, orphan.debit_number)
            ),
            TIMEOUT_S,
        )
        assert final.transfer.status == api.TRANSFER_STATUS_COMPLETED
    finally:
        await stub.close()


def test_an_orphan_behind_a_full_batch_of_young_transfers_is_found(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfers_module, "transfer_resolve_batch_max", 1)
    asyncio.run(young_transfer_in_front(tmp_path))
