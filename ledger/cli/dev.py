"""``ledger-dev``: seed accounts and run the reference scenarios against a gateway.

``scenario-1`` is the reference scenario on one account; ``scenario-2`` shows an atomic
transfer between two new accounts on different shards (ids vary from run to run, the shape of
the output does not).

``seed-accounts``, ``scenario-1`` and ``scenario-2`` talk to the gateway through the client
library (``ledger.client.LedgerClient``): its retries, its idempotency keys, its typed errors
(shown as one line, ``CODE: message``).

``seed-accounts`` decisions:

* Accounts are created with ``LedgerClient.create_accounts`` in chunks of ``seed_chunk_size``
  (the batch maximum: one ``CreateAccounts`` call each), ``seed_calls_in_flight`` chunks in
  flight on one client (worker threads); chunks are printed in order, so stdout is exactly one
  ``created account <id>`` line per account, in creation-request order, whatever the
  concurrency.
* Every item carries an idempotency key unique to this run (``seed-<run uuid>-<n>``), so a
  retry can never create a second account for the same line. The client resends items that
  fail transiently (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED), and whole chunk calls
  that fail so, with the same keys, up to ``seed_attempts_max`` attempts per chunk, with a
  doubling pause from ``seed_retry_backoff_s`` (``seed_retry_policy``); items refused for
  good (any other code) are not resent.
* If items still fail, no further chunks are started, the chunks already in flight are
  finished (and their accounts printed: they exist), and the command exits 1 with one line on
  stderr. Accounts printed before the error exist; nothing else was created twice.
* ``--quiet`` prints only ``created N accounts`` at the end. A progress bar goes to stderr only
  when stderr is a terminal and the account lines are not going to the same terminal, so
  redirected or captured output stays clean.
"""

from __future__ import annotations

import collections
import contextlib
import json
import pathlib
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import click

from ledger import ids, limits
from ledger.cli.bench import bench_command
from ledger.cli.bench_apply import bench_apply_command
from ledger.cli.bench_compare import bench_compare_command
from ledger.cli.bench_scale import bench_scale_command
from ledger.cli.check import check_command
from ledger.cli.client import (
    ClientSecurity,
    call_timeout_s,
    client_security_options,
    gateway_client,
)
from ledger.client import ItemResult, LedgerClient, RetryPolicy
from ledger.config import generate_config
from ledger.gateway.auth import SCOPES, append_token, new_token
from ledger.pb import ledger_api_pb2 as api

__all__ = ["SeedOutcome", "main", "seed_accounts_in_chunks", "seed_retry_policy"]

GATEWAY_DEFAULT = "localhost:8000"
TOKENS_FILE_DEFAULT = "ledger_tokens.txt"
seed_count_max = 1_000_000
seed_chunk_size = limits.batch_items_max  # accounts per CreateAccounts call
seed_calls_in_flight = 4  # chunk calls on the wire at once
seed_attempts_max = 3  # calls per chunk (first call included)
seed_retry_backoff_s = 0.2  # ceiling of the pause before the 2nd call; doubles for the next

assert 0 < seed_chunk_size <= limits.batch_items_max and seed_attempts_max >= 1


def _status_name(status: int) -> str:
    return api.TransactionStatus.Name(status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Developer tools for the ledger service."""


class SeedOutcome:
    """What a seeding run did: accounts created, items that failed for good, the last failure."""

    def __init__(self) -> None:
        self.created = 0
        self.failed = 0
        self.failure = ""


def seed_retry_policy() -> RetryPolicy:
    """``seed_attempts_max`` calls per chunk, each of ``call_timeout_s``, pauses doubling from
    ``seed_retry_backoff_s`` (read when called, so tests can shorten them)."""
    pauses_s = sum(seed_retry_backoff_s * 2**n for n in range(seed_attempts_max - 1))
    return RetryPolicy(
        deadline_s=seed_attempts_max * call_timeout_s + pauses_s + 1.0,  # never the limit
        attempt_timeout_s=call_timeout_s,
        backoff_initial_s=seed_retry_backoff_s,
        backoff_max_s=seed_retry_backoff_s * 2 ** max(seed_attempts_max - 2, 0),
        attempts_max=seed_attempts_max,
    )


def seed_accounts_in_chunks(
    client: LedgerClient,
    count: int,
    emit: Callable[[list[str]], None],
    key_prefix: str | None = None,
) -> SeedOutcome:
    """Create ``count`` accounts; ``emit`` gets each chunk's created ids, chunks in order.

    After a chunk with accounts that failed for good, no further chunk is started; the chunks
    already in flight are finished and emitted (their accounts exist).
    """
    prefix = key_prefix if key_prefix is not None else f"seed-{uuid.uuid4().hex}"
    outcome = SeedOutcome()
    in_flight: collections.deque[tuple[int, Future[list[ItemResult[api.Account]]]]] = (
        collections.deque()
    )
    next_start = 0
    pool = ThreadPoolExecutor(seed_calls_in_flight, thread_name_prefix="seed")

    def launch() -> None:
        nonlocal next_start
        end = min(next_start + seed_chunk_size, count)
        keys = [f"{prefix}-{index}" for index in range(next_start, end)]
        in_flight.append((len(keys), pool.submit(client.create_accounts, idempotency_keys=keys)))
        next_start = end

    try:
        while True:
            while (
                outcome.failed == 0
                and next_start < count
                and (len(in_flight) < seed_calls_in_flight)
            ):
                launch()
            if not in_flight:
                return outcome
            size, future = in_flight.popleft()
            results = future.result()
            created = [result.value.id for result in results if result.value is not None]
            outcome.created += len(created)
            if len(created) < size:
                outcome.failed += size - len(created)
                errors = [result.error for result in results if result.error is not None]
                outcome.failure = f"{errors[-1].code.name}: {errors[-1].message}"
            if created:
                emit(created)
    finally:
        # Only chunks not started yet are dropped; on an exception (Ctrl-C) the caller closes
        # the client, which cancels the calls still running.
        pool.shutdown(wait=False, cancel_futures=True)


class _NoBar:
    def update(self, _count: int) -> None:
        pass


@main.command("seed-accounts")
@click.option("--count", type=click.IntRange(1, seed_count_max), default=100, show_default=True)
@click.option("--gateway", default=GATEWAY_DEFAULT, show_default=True)
@click.option(
    "--quiet",
    is_flag=True,
    help="Print only 'created N accounts' at the end, not one line per account.",
)
@client_security_options
def seed_accounts(count: int, gateway: str, quiet: bool, security: ClientSecurity) -> None:
    """Create COUNT accounts and print 'created account <id>' for each (in batches)."""
    show_bar = sys.stderr.isatty() and (quiet or not sys.stdout.isatty())
    with (
        gateway_client(gateway, security, retry=seed_retry_policy()) as client,
        contextlib.ExitStack() as stack,
    ):
        progress: Any = _NoBar()
        if show_bar:
            progress = stack.enter_context(
                click.progressbar(length=count, file=sys.stderr, label="seeding accounts")
            )

        def emit(account_ids: list[str]) -> None:
            if not quiet:
                click.echo("\n".join(f"created account {a}" for a in account_ids))
            progress.update(len(account_ids))

        outcome = seed_accounts_in_chunks(client, count, emit)
    if outcome.failed:
        raise click.ClickException(
            f"{outcome.failed} of {count} accounts not created after {seed_attempts_max} "
            f"attempts ({outcome.created} created); last error {outcome.failure}"
        )
    if quiet:
        click.echo(f"created {outcome.created} accounts")


def _show_balance(client: LedgerClient, account_id: str) -> None:
    """The scenarios' balance line, in the reference's words."""
    account = client.get_account(account_id)
    click.echo(
        f"Account {account.id} balance: {account.available_balance} available, "
        f"{account.settled_balance} settled"
    )


@main.command("scenario-1")
@click.option("--account-id", required=True, help="16 lowercase hex chars.")
@click.option("--gateway", default=GATEWAY_DEFAULT, show_default=True)
@client_security_options
def scenario_1(account_id: str, gateway: str, security: ClientSecurity) -> None:
    """The reference scenario: top-up, pending purchase, settle, insufficient funds."""
    try:
        ids.parse_account_id(account_id)
    except ids.InvalidId:
        raise click.ClickException(f"invalid account id {account_id!r}") from None
    with gateway_client(gateway, security) as client:
        click.echo(f"account id: {account_id}")

        def create(amount: int, description: str, settled: bool) -> api.Transaction:
            transaction = client.create_transaction(
                account_id, amount, description=description, settled=settled
            )
            click.echo(
                f"Created transaction {transaction.id} for amount {transaction.amount}: "
                f"{_status_name(transaction.status)}"
            )
            return transaction

        _show_balance(client, account_id)
        create(100, "Instant Topup 1", settled=True)
        pending = create(-10, "Purchase 1", settled=False)
        _show_balance(client, account_id)
        settled = client.settle_transaction(pending.id)
        click.echo(
            f"Settled transaction {settled.id} for amount {settled.amount}: "
            f"{_status_name(settled.status)}"
        )
        _show_balance(client, account_id)
        create(-1000, "Purchase 2", settled=True)


scenario_2_topup = 100  # minor units put on the source account
scenario_2_transfer = 30  # moved to the destination (< the top-up)
scenario_2_too_much = 1000  # more than the source holds afterwards
scenario_2_idempotency_key = "scenario-2-transfer-1"  # keys are per source account: a new one
scenario_2_account_tries_max = 200  # CreateAccount calls to find a second shard (1/16 miss each)

assert 0 < scenario_2_transfer < scenario_2_topup < scenario_2_too_much


def _transfer_status_name(status: int) -> str:
    return api.TransferStatus.Name(status)


@main.command("scenario-2")
@click.option("--gateway", default=GATEWAY_DEFAULT, show_default=True)
@client_security_options
def scenario_2(gateway: str, security: ClientSecurity) -> None:
    """Transfers: two new accounts on different shards, top-up, transfer, retry, too much."""
    with gateway_client(gateway, security) as client:

        def new_account() -> str:
            return str(client.create_account().id)

        def shard_of(account_id: str) -> int:
            return ids.shard_index(ids.parse_account_id(account_id))

        source = new_account()
        for _ in range(scenario_2_account_tries_max):
            target = new_account()
            if shard_of(target) != shard_of(source):
                break
        else:  # pragma: no cover - (1/16)^200
            raise click.ClickException(
                f"no account on a shard other than {shard_of(source)} after "
                f"{scenario_2_account_tries_max} tries"
            )
        click.echo(f"from account id: {source} (shard {shard_of(source)})")
        click.echo(f"to account id: {target} (shard {shard_of(target)})")

        def show_balances() -> None:
            _show_balance(client, source)
            _show_balance(client, target)

        def show_side(side: str, transaction_id: str) -> None:
            transaction = client.get_transaction(transaction_id)
            click.echo(
                f"  {side} transaction {transaction.id} for amount {transaction.amount}: "
                f"{_status_name(transaction.status)}, transfer {transaction.transfer_id or '-'}"
            )

        def transfer(amount: int, description: str, key: str | None) -> api.Transfer:
            return client.create_transfer(
                source, target, amount, description=description, idempotency_key=key
            )

        def show_transfer(verb: str, done: api.Transfer, key: str) -> None:
            keyed = f" with idempotency key {key}" if key else ""
            click.echo(
                f"{verb} transfer {done.id} for amount {done.amount} from "
                f"{done.from_account_id} to {done.to_account_id}{keyed}: "
                f"{_transfer_status_name(done.status)}"
            )
            show_side("debit", done.debit_transaction_id)
            if done.credit_transaction_id:
                show_side("credit", done.credit_transaction_id)

        show_balances()
        top_up = client.create_transaction(
            source, scenario_2_topup, description="Instant Topup 1", settled=True
        )
        click.echo(
            f"Created transaction {top_up.id} for amount {top_up.amount}: "
            f"{_status_name(top_up.status)}"
        )
        show_balances()
        key = scenario_2_idempotency_key
        first = transfer(scenario_2_transfer, "Transfer 1", key)
        show_transfer("Created", first, key)
        show_balances()
        again = transfer(scenario_2_transfer, "Transfer 1", key)
        if again != first:
            raise click.ClickException(
                f"the retry with idempotency key {key} returned transfer {again.id} "
                f"({_transfer_status_name(again.status)}), not transfer {first.id}"
            )
        click.echo(
            f"Retried transfer with idempotency key {key}: transfer {again.id}, "
            f"{_transfer_status_name(again.status)} (the same transfer)"
        )
        show_balances()
        refused = transfer(scenario_2_too_much, "Transfer 2", None)  # a fresh key, not shown
        show_transfer("Created", refused, "")
        show_balances()


def procfile_text(document: dict[str, object], config_path: str) -> str:
    """The Procfile that runs the nodes of ``document`` and one gateway on port 8000."""
    lines = []
    nodes = document["nodes"]
    assert isinstance(nodes, list)
    for position, node in enumerate(nodes, start=1):
        port = node["address"].rsplit(":", 1)[1]
        lines.append(
            f"node{position:02d}: ledger-node --node-id {node['id']} --port {port} "
            f"--data-dir ./data/{node['id']} --cluster-config {config_path}"
        )
    lines.append(f"gateway: ledger-gateway --port 8000 --cluster-config {config_path}")
    return "\n".join(lines) + "\n"


@main.command("gen-config")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=pathlib.Path("cluster_config.json"),
    show_default=True,
)
@click.option(
    "--procfile",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="Also write a Procfile that matches the new node ids.",
)
@click.option("--grpc-port-base", type=click.IntRange(1, 65000), default=7000, show_default=True)
@click.option("--raft-port-base", type=click.IntRange(1, 65000), default=17000, show_default=True)
@click.option(
    "--hosts",
    default=None,
    metavar="A,B,C",
    help="One address per node, for nodes on separate machines: each node's API and "
    "Raft ports bind to its own address. Default: all on this machine.",
)
def gen_config(
    output: pathlib.Path,
    procfile: pathlib.Path | None,
    grpc_port_base: int,
    raft_port_base: int,
    hosts: str | None,
) -> None:
    """Write a fresh cluster config: 3 nodes, 16 shards, 3 replicas, new ids and secret."""
    host_list = None if hosts is None else [h.strip() for h in hosts.split(",") if h.strip()]
    if host_list is not None and (len(host_list) != 3 or len(set(host_list)) != 3):
        raise click.BadParameter("give 3 distinct addresses", param_hint="--hosts")
    document = generate_config(
        grpc_port_base=grpc_port_base, raft_port_base=raft_port_base, hosts=host_list
    )
    output.write_text(json.dumps(document, indent=2) + "\n")
    click.echo(f"wrote {output}")
    if procfile is not None:
        procfile.write_text(procfile_text(document, str(output)))
        click.echo(f"wrote {procfile}")


@main.command("gen-token")
@click.option(
    "--scope",
    type=click.Choice(list(SCOPES)),
    required=True,
    help="read: Get*/List* rpcs and reflection; write: every rpc.",
)
@click.option(
    "--name", required=True, help="Who holds it (unique in the file; A-Z a-z 0-9 . _ @ -)."
)
@click.option(
    "--tokens-file",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=pathlib.Path(TOKENS_FILE_DEFAULT),
    show_default=True,
    help="Appended to (created with mode 0600 if missing); pass it to the servers' --tokens-file.",
)
def gen_token(scope: str, name: str, tokens_file: pathlib.Path) -> None:
    """Print a new random API token once and append its SHA-256 to the tokens file."""
    token = new_token()
    try:
        append_token(tokens_file, token, scope, name)
    except (ValueError, OSError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(token)
    click.echo(
        f"appended the hash of {scope} token {name!r} to {tokens_file}; the token is "
        "shown only this once; servers read the file at start",
        err=True,
    )


main.add_command(bench_command)
main.add_command(bench_apply_command)
main.add_command(bench_compare_command)
main.add_command(bench_scale_command)
main.add_command(check_command)


if __name__ == "__main__":
    main()
