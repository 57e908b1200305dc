"""``ledger-dev``: seed accounts and run the reference scenario against a gateway (SPEC §5)."""

from __future__ import annotations

import json
import pathlib

import click

from ledger import ids
from ledger.cli.bench import bench_command
from ledger.config import generate_config
from ledger.cli.client import call_timeout_s, gateway_stub
from ledger.pb import ledger_api_pb2 as api

__all__ = ["main"]

GATEWAY_DEFAULT = "localhost:8000"
seed_count_max = 1_000_000


def _status_name(status: int) -> str:
    return api.TransactionStatus.Name(status)  # type: ignore[arg-type]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Developer tools for the ledger service."""


@main.command("seed-accounts")
@click.option("--count", type=click.IntRange(1, seed_count_max), default=100, show_default=True)
@click.option("--gateway", default=GATEWAY_DEFAULT, show_default=True)
def seed_accounts(count: int, gateway: str) -> None:
    """Create COUNT accounts and print 'created account <id>' for each."""
    with gateway_stub(gateway) as stub:
        for _ in range(count):
            response = stub.CreateAccount(api.CreateAccountRequest(), timeout=call_timeout_s)
            click.echo(f"created account {response.account.id}")


@main.command("scenario-1")
@click.option("--account-id", required=True, help="16 lowercase hex chars.")
@click.option("--gateway", default=GATEWAY_DEFAULT, show_default=True)
def scenario_1(account_id: str, gateway: str) -> None:
    """The reference scenario: top-up, pending purchase, settle, insufficient funds."""
    try:
        ids.parse_account_id(account_id)
    except ids.InvalidId:
        raise click.ClickException(f"invalid account id {account_id!r}") from None
    with gateway_stub(gateway) as stub:
        click.echo(f"account id: {account_id}")

        def show_balance() -> None:
            account = stub.GetAccount(
                api.GetAccountRequest(account_id=account_id), timeout=call_timeout_s
            ).account
            click.echo(
                f"Account {account.id} balance: {account.available_balance} available, "
                f"{account.settled_balance} settled"
            )

        def create(amount: int, description: str, settled: bool) -> api.Transaction:
            request = api.CreateTransactionRequest(
                account_id=account_id, amount=amount, description=description, settled=settled
            )
            transaction = stub.CreateTransaction(request, timeout=call_timeout_s).transaction
            click.echo(
                f"Created transaction {transaction.id} for amount {transaction.amount}: "
                f"{_status_name(transaction.status)}"
            )
            return transaction

        show_balance()
        create(100, "Instant Topup 1", settled=True)
        pending = create(-10, "Purchase 1", settled=False)
        show_balance()
        settled = stub.SettleTransaction(
            api.SettleTransactionRequest(transaction_id=pending.id), timeout=call_timeout_s
        ).transaction
        click.echo(
            f"Settled transaction {settled.id} for amount {settled.amount}: "
            f"{_status_name(settled.status)}"
        )
        show_balance()
        create(-1000, "Purchase 2", settled=True)


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
@click.option("--output", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              default=pathlib.Path("cluster_config.json"), show_default=True)
@click.option("--procfile", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              default=None, help="Also write a Procfile that matches the new node ids.")
@click.option("--grpc-port-base", type=click.IntRange(1, 65000), default=7000, show_default=True)
@click.option("--raft-port-base", type=click.IntRange(1, 65000), default=17000, show_default=True)
def gen_config(output: pathlib.Path, procfile: pathlib.Path | None, grpc_port_base: int,
               raft_port_base: int) -> None:
    """Write a fresh cluster config: 3 nodes, 16 shards, 3 replicas, new ids and secret."""
    document = generate_config(grpc_port_base=grpc_port_base, raft_port_base=raft_port_base)
    output.write_text(json.dumps(document, indent=2) + "\n")
    click.echo(f"wrote {output}")
    if procfile is not None:
        procfile.write_text(procfile_text(document, str(output)))
        click.echo(f"wrote {procfile}")


main.add_command(bench_command)


if __name__ == "__main__":
    main()
