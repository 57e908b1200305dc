"""TLS, client certificates and bearer tokens on the public API, against real server processes.

Goal: with ``--tokens-file`` a call without a token, or with an unknown one, is answered
UNAUTHENTICATED, a read token on a write rpc PERMISSION_DENIED, and in both cases nothing is
applied; reads need ``read``, writes ``write``; health stays open and reflection follows the read
rule. With ``--tls-cert/--tls-key`` a plaintext client gets nowhere and a client that trusts the
CA does; with ``--client-ca`` a client needs a certificate signed by that CA. The dev CLI and
``probe_load`` reach such a server with ``--tls-ca`` and ``--token`` (or ``$LEDGER_TOKEN``).

Method: a throwaway CA and server/client certificates (``tests/tls_material.py``), tokens made
by ``ledger-dev gen-token``, ``ledger-standalone`` started each way on free ports, and one
cluster whose gateway runs with TLS and tokens. Calls use plain grpc channels (not the client
module under test) so the wire behaviour is checked independently. "Nothing applied" is checked
by reading the account (balances) and its whole history before and after each refused call.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from harness import ClusterService, ServiceProcess, StandaloneService, run_dev
from tls_material import Pki, make_pki

from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

T = 10.0
cli_timeout_s = 90.0
SERVICE = "com.evrblk.monstera_example.ledger.gatewaypb.LedgerServiceApi"


# -- fixtures ------------------------------------------------------------------------------------


class Tokens:
    def __init__(self, path: pathlib.Path, write: str, read: str) -> None:
        self.path, self.write, self.read = path, write, read


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    path = tmp_path_factory.mktemp("tokens") / "tokens.txt"
    made = {}
    for scope in ("write", "read"):
        result = run_dev(
            "gen-token",
            "--scope",
            scope,
            "--name",
            f"test-{scope}",
            "--tokens-file",
            str(path),
            timeout_s=cli_timeout_s,
        )
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        assert re.fullmatch(r"ledger_[A-Za-z0-9_-]{43}", token), result.stdout
        assert token not in path.read_text()
        made[scope] = token
    return Tokens(path, made["write"], made["read"])


def _started(service: Any) -> Iterator[Any]:
    try:
        service.start()
        yield service
    finally:
        service.stop()


def _tls_args(pki: Pki) -> list[str]:
    return ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, tokens: Tokens
) -> Iterator[StandaloneService]:
    """Standalone with TLS and bearer tokens."""
    service = StandaloneService(
        tmp_path_factory.mktemp("secured"),
        server_args=[*_tls_args(pki), "--tokens-file", str(tokens.path)],
    )
    yield from _started(service)


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[StandaloneService]:
    """Standalone with TLS that requires client certificates signed by the test CA."""
    service = StandaloneService(
        tmp_path_factory.mktemp("mtls"), server_args=[*_tls_args(pki), "--client-ca", str(pki.ca)]
    )
    yield from _started(service)


@pytest.fixture(scope="module")
def plain_with_tokens(
    tmp_path_factory: pytest.TempPathFactory, tokens: Tokens
) -> Iterator[StandaloneService]:
    service = StandaloneService(
        tmp_path_factory.mktemp("plain-tokens"), server_args=["--tokens-file", str(tokens.path)]
    )
    yield from _started(service)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, tokens: Tokens
) -> Iterator[ClusterService]:
    """A 3-node cluster whose gateway serves TLS and requires tokens."""
    service = ClusterService(
        tmp_path_factory.mktemp("secured-cluster"),
        gateway_args=[*_tls_args(pki), "--tokens-file", str(tokens.path)],
    )
    yield from _started(service)


# -- clients (plain grpc, on purpose) -------------------------------------------------------------


def tls_channel(
    address: str,
    ca: pathlib.Path,
    cert: pathlib.Path | None = None,
    key: pathlib.Path | None = None,
) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=None if key is None else key.read_bytes(),
        certificate_chain=None if cert is None else cert.read_bytes(),
    )
    return grpc.secure_channel(address, credentials)


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return () if token is None else (("authorization", f"Bearer {token}"),)


class Client:
    """A stub plus the metadata it sends on every call."""

    def __init__(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        self.stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        self.metadata = tuple(metadata)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.stub, name)
        return lambda request: method(request, timeout=T, metadata=self.metadata)


def reason_of(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "expected a rich status"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


def refused(call: Any, code: grpc.StatusCode, reason: str | None = None) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value
    if reason is not None:
        assert reason_of(caught.value) == reason


def snapshot(admin: Client, account_id: str) -> tuple[Any, ...]:
    """Balances and the whole history of an account, as seen with the write token."""
    account = admin.GetAccount(api.GetAccountRequest(account_id=account_id)).account
    history = admin.ListTransactions(
        api.ListTransactionsRequest(account_id=account_id, page_size=1000)
    ).transactions
    return (
        account.available_balance,
        account.settled_balance,
        tuple((t.id, t.amount, t.status) for t in history),
    )


def funded_account(admin: Client) -> tuple[str, str]:
    """A new account with a settled top-up of 100 and a pending purchase of -10: (id, pending)."""
    account_id = admin.CreateAccount(api.CreateAccountRequest()).account.id
    admin.CreateTransaction(
        api.CreateTransactionRequest(account_id=account_id, amount=100, settled=True)
    )
    pending = admin.CreateTransaction(
        api.CreateTransactionRequest(account_id=account_id, amount=-10, settled=False)
    ).transaction
    assert pending.status == api.TRANSACTION_STATUS_PENDING
    return account_id, pending.id


def write_calls(client: Client, account_id: str, pending_id: str, other_id: str) -> dict[str, Any]:
    """One call of every write rpc, each of which would change the account (or ``other_id``, the
    destination of a transfer) if applied."""
    purchase = api.CreateTransactionRequest(account_id=account_id, amount=-1, settled=True)
    return {
        "CreateTransfer": lambda: client.CreateTransfer(
            api.CreateTransferRequest(from_account_id=account_id, to_account_id=other_id, amount=5)
        ),
        "CreateTransaction": lambda: client.CreateTransaction(purchase),
        "CreateTransactions": lambda: client.CreateTransactions(
            api.CreateTransactionsRequest(transactions=[purchase, purchase])
        ),
        "SettleTransaction": lambda: client.SettleTransaction(
            api.SettleTransactionRequest(transaction_id=pending_id)
        ),
        "CancelTransaction": lambda: client.CancelTransaction(
            api.CancelTransactionRequest(transaction_id=pending_id)
        ),
        "CreateAccount": lambda: client.CreateAccount(
            api.CreateAccountRequest(idempotency_key=f"auth-test-{account_id}")
        ),
        "CreateAccounts": lambda: client.CreateAccounts(
            api.CreateAccountsRequest(
                accounts=[api.CreateAccountRequest(idempotency_key=f"auth-test-b-{account_id}")]
            )
        ),
    }


def assert_refused_and_nothing_applied(
    admin: Client, client: Client, code: grpc.StatusCode, reason: str
) -> None:
    account_id, pending_id = funded_account(admin)
    other_id = admin.CreateAccount(api.CreateAccountRequest()).account.id
    before = snapshot(admin, account_id), snapshot(admin, other_id)
    for name, call in write_calls(client, account_id, pending_id, other_id).items():
        try:
            call()
        except grpc.RpcError as error:
            assert error.code() == code, (name, error)
            assert reason_of(error) == reason, name
        else:
            pytest.fail(f"{name} was accepted")
    assert (snapshot(admin, account_id), snapshot(admin, other_id)) == before
    # The idempotency keys of the refused CreateAccount(s) were never used: a write token
    # gets fresh accounts for them, with an empty history.
    for key in (f"auth-test-{account_id}", f"auth-test-b-{account_id}"):
        created = admin.CreateAccount(api.CreateAccountRequest(idempotency_key=key)).account
        assert snapshot(admin, created.id) == (0, 0, ())


def health_status(channel: grpc.Channel, service: str = "") -> int:
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=T
    )
    return int(response.status)


def list_services(channel: grpc.Channel, token: str | None) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = stub.ServerReflectionInfo(iter([request]), timeout=T, metadata=bearer(token))
    return [s.name for r in responses for s in r.list_services_response.service]


def server_line(process: ServiceProcess) -> str:
    lines = [line for line in process.log_path.read_text().splitlines() if ": serving " in line]
    assert len(lines) == 1, process.tail_log()
    return lines[0]


def ledger_dev(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "LEDGER_TOKEN"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli.dev", *args],
        capture_output=True,
        text=True,
        timeout=cli_timeout_s,
        env=environment,
        check=False,
    )


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- standalone with TLS and tokens ---------------------------------------------------------------


def test_startup_line_says_tls_and_tokens(secured: StandaloneService) -> None:
    line = server_line(secured.process)
    assert "serving TLS on 127.0.0.1:" in line, line
    assert "bearer tokens required (1 read, 1 write" in line, line
    assert "only processes on this machine can connect" in line, line


def test_no_token_is_unauthenticated_and_applies_nothing(
    secured: StandaloneService, pki: Pki, tokens: Tokens
) -> None:
    with tls_channel(secured.address, pki.ca) as channel:
        admin = Client(channel, bearer(tokens.write))
        assert_refused_and_nothing_applied(
            admin, Client(channel, ()), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"
        )
        account_id, _ = funded_account(admin)
        anonymous = Client(channel, ())
        for call in (
            lambda: anonymous.GetAccount(api.GetAccountRequest(account_id=account_id)),
            lambda: anonymous.ListTransactions(api.ListTransactionsRequest(account_id=account_id)),
        ):
            refused(call, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


@pytest.mark.parametrize(
    "metadata",
    [
        (("authorization", "Bearer ledger_not-a-token"),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
    ],
    ids=["unknown-token", "other-scheme"],
)
def test_wrong_token_is_unauthenticated_and_applies_nothing(
    secured: StandaloneService,
    pki: Pki,
    tokens: Tokens,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    with tls_channel(secured.address, pki.ca) as channel:
        admin = Client(channel, bearer(tokens.write))
        reason = "TOKEN_UNKNOWN" if "Bearer" in metadata[0][1] else "TOKEN_MISSING"
        assert_refused_and_nothing_applied(
            admin, Client(channel, metadata), grpc.StatusCode.UNAUTHENTICATED, reason
        )


def test_hash_of_a_token_is_not_a_token(
    secured: StandaloneService, pki: Pki, tokens: Tokens
) -> None:
    stored = tokens.path.read_text().split()[-3]  # "sha256:<hex>" of the read token
    with tls_channel(secured.address, pki.ca) as channel:
        for value in (stored, stored.removeprefix("sha256:")):
            client = Client(channel, bearer(value))
            refused(
                lambda c=client: c.GetAccount(api.GetAccountRequest(account_id="0123456789abcdef")),
                grpc.StatusCode.UNAUTHENTICATED,
                "TOKEN_UNKNOWN",
            )


def test_read_token_may_read_but_not_write(
    secured: StandaloneService, pki: Pki, tokens: Tokens
) -> None:
    with tls_channel(secured.address, pki.ca) as channel:
        admin = Client(channel, bearer(tokens.write))
        reader = Client(channel, bearer(tokens.read))
        assert_refused_and_nothing_applied(
            admin, reader, grpc.StatusCode.PERMISSION_DENIED, "INSUFFICIENT_SCOPE"
        )
        account_id, pending_id = funded_account(admin)
        account = reader.GetAccount(api.GetAccountRequest(account_id=account_id)).account
        assert (account.available_balance, account.settled_balance) == (90, 100)
        transaction = reader.GetTransaction(
            api.GetTransactionRequest(transaction_id=pending_id)
        ).transaction
        assert transaction.status == api.TRANSACTION_STATUS_PENDING
        listed = reader.ListTransactions(api.ListTransactionsRequest(account_id=account_id))
        assert [t.amount for t in listed.transactions] == [100, -10]
        other_id = admin.CreateAccount(api.CreateAccountRequest()).account.id
        transfer = admin.CreateTransfer(
            api.CreateTransferRequest(from_account_id=account_id, to_account_id=other_id, amount=7)
        ).transfer
        seen = reader.GetTransfer(api.GetTransferRequest(transfer_id=transfer.id)).transfer
        assert (seen.id, seen.amount, seen.status) == (transfer.id, 7, transfer.status)
        # PERMISSION_DENIED carries what was needed and what the token has.
        with pytest.raises(grpc.RpcError) as caught:
            reader.CreateTransaction(
                api.CreateTransactionRequest(account_id=account_id, amount=5, settled=True)
            )
        status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
        assert status is not None
        info = error_details_pb2.ErrorInfo()
        status.details[0].Unpack(info)
        assert dict(info.metadata) == {"required_scope": "write", "token_scope": "read"}


def test_write_token_may_do_everything(
    secured: StandaloneService, pki: Pki, tokens: Tokens
) -> None:
    with tls_channel(secured.address, pki.ca) as channel:
        writer = Client(channel, bearer(tokens.write))
        account_id, pending_id = funded_account(writer)
        settled = writer.SettleTransaction(api.SettleTransactionRequest(transaction_id=pending_id))
        assert settled.transaction.status == api.TRANSACTION_STATUS_SETTLED
        batch = writer.CreateTransactions(
            api.CreateTransactionsRequest(
                transactions=[
                    api.CreateTransactionRequest(account_id=account_id, amount=-1, settled=True)
                ]
                * 3
            )
        )
        assert [r.status.code for r in batch.results] == [0, 0, 0]
        assert snapshot(writer, account_id)[:2] == (87, 87)
        created = writer.CreateAccounts(
            api.CreateAccountsRequest(accounts=[api.CreateAccountRequest()] * 2)
        )
        assert [r.status.code for r in created.results] == [0, 0]


def test_health_needs_no_token(secured: StandaloneService, pki: Pki) -> None:
    with tls_channel(secured.address, pki.ca) as channel:
        assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
        assert health_status(channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_follows_the_read_rule(
    secured: StandaloneService, pki: Pki, tokens: Tokens
) -> None:
    with tls_channel(secured.address, pki.ca) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            list_services(channel, None)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert SERVICE in list_services(channel, tokens.read)
        assert SERVICE in list_services(channel, tokens.write)


def test_plaintext_client_cannot_talk_to_a_tls_server(
    secured: StandaloneService, tokens: Tokens
) -> None:
    with grpc.insecure_channel(secured.address) as channel:
        client = Client(channel, bearer(tokens.write))
        refused(
            lambda: client.CreateAccount(api.CreateAccountRequest()), grpc.StatusCode.UNAVAILABLE
        )


def test_client_that_does_not_trust_the_ca_cannot_connect(
    secured: StandaloneService, pki: Pki, tokens: Tokens
) -> None:
    with tls_channel(secured.address, pki.other_ca) as channel:
        client = Client(channel, bearer(tokens.write))
        refused(
            lambda: client.CreateAccount(api.CreateAccountRequest()), grpc.StatusCode.UNAVAILABLE
        )


# -- the dev CLI and probe_load against it --------------------------------------------------------


def test_dev_cli_with_tls_and_token(secured: StandaloneService, pki: Pki, tokens: Tokens) -> None:
    tls = ["--gateway", secured.address, "--tls-ca", str(pki.ca)]
    seeded = ledger_dev("seed-accounts", "--count", "3", *tls, "--token", tokens.write)
    assert seeded.returncode == 0, seeded.stderr
    account_ids = re.findall(r"created account ([0-9a-f]{16})", seeded.stdout)
    assert len(account_ids) == 3

    # The token from the environment, as documented.
    scenario = ledger_dev(
        "scenario-1", "--account-id", account_ids[0], *tls, env={"LEDGER_TOKEN": tokens.write}
    )
    assert scenario.returncode == 0, scenario.stderr
    assert "balance: 90 available, 90 settled" in scenario.stdout
    transfers = ledger_dev("scenario-2", *tls, env={"LEDGER_TOKEN": tokens.write})
    assert transfers.returncode == 0, transfers.stderr
    assert "TRANSFER_STATUS_COMPLETED" in transfers.stdout
    assert "TRANSFER_STATUS_INSUFFICIENT_FUNDS" in transfers.stdout

    bench = ledger_dev(
        "bench",
        *tls,
        "--json",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--concurrency",
        "4",
        "--accounts",
        "4",
        "--mix",
        "create_settled=3,get=1,list=1",
        env={"LEDGER_TOKEN": tokens.write},
    )
    assert bench.returncode == 0, bench.stderr
    document = json.loads(bench.stdout)
    assert document["total"]["ops"] > 0 and document["errors"] == {}
    assert (document["params"]["tls"], document["params"]["token"]) == (True, True)
    assert tokens.write not in bench.stdout + bench.stderr

    with tls_channel(secured.address, pki.ca) as channel:
        account = (
            Client(channel, bearer(tokens.read))
            .GetAccount(api.GetAccountRequest(account_id=account_ids[0]))
            .account
        )
        assert account.settled_balance == 90


def test_dev_cli_refusals_are_one_line(
    secured: StandaloneService, pki: Pki, tokens: Tokens
) -> None:
    address = secured.address
    no_tls = one_line_failure(
        ledger_dev("seed-accounts", "--count", "1", "--gateway", address, "--token", tokens.write)
    )
    assert "not reachable" in no_tls and "--tls-ca" in no_tls
    no_token = one_line_failure(
        ledger_dev("seed-accounts", "--count", "1", "--gateway", address, "--tls-ca", str(pki.ca))
    )
    assert "UNAUTHENTICATED" in no_token
    read_only = one_line_failure(
        ledger_dev(
            "seed-accounts",
            "--count",
            "1",
            "--gateway",
            address,
            "--tls-ca",
            str(pki.ca),
            "--token",
            tokens.read,
        )
    )
    assert "PERMISSION_DENIED" in read_only
    bench = ledger_dev(
        "bench",
        "--gateway",
        address,
        "--tls-ca",
        str(pki.ca),
        "--duration",
        "1",
        "--token",
        tokens.read,
    )
    assert bench.returncode != 0 and "Traceback" not in bench.stderr
    assert "account setup failed: PERMISSION_DENIED" in bench.stderr.strip().splitlines()[-1]


def test_probe_load_with_tls_and_token(
    secured: StandaloneService, pki: Pki, tokens: Tokens
) -> None:
    environment = dict(os.environ, LEDGER_TOKEN=tokens.write)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.tools.probe_load",
            "--target",
            secured.address,
            "--tls-ca",
            str(pki.ca),
            "--kind",
            "single",
            "--in-flight",
            "4",
            "--accounts",
            "4",
            "--warmup",
            "0.2",
            "--seconds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=cli_timeout_s,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["calls_per_s"] > 0 and document["errors"] == {}


# -- mTLS ------------------------------------------------------------------------------------------


def test_mtls_requires_a_client_certificate_from_the_ca(mtls: StandaloneService, pki: Pki) -> None:
    assert "client certificates signed by" in server_line(mtls.process)
    request = api.CreateAccountRequest()
    with tls_channel(mtls.address, pki.ca) as channel:
        client = Client(channel, ())
        refused(lambda: client.CreateAccount(request), grpc.StatusCode.UNAVAILABLE)
    with tls_channel(mtls.address, pki.ca, pki.other_client_cert, pki.other_client_key) as channel:
        client = Client(channel, ())
        refused(lambda: client.CreateAccount(request), grpc.StatusCode.UNAVAILABLE)
    with tls_channel(mtls.address, pki.ca, pki.client_cert, pki.client_key) as channel:
        account = Client(channel, ()).CreateAccount(request).account
        assert len(account.id) == 16


def test_dev_cli_with_a_client_certificate(mtls: StandaloneService, pki: Pki) -> None:
    result = ledger_dev(
        "seed-accounts",
        "--count",
        "2",
        "--gateway",
        mtls.address,
        "--tls-ca",
        str(pki.ca),
        "--tls-cert",
        str(pki.client_cert),
        "--tls-key",
        str(pki.client_key),
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


# -- plaintext: open by default, tokens possible ---------------------------------------------------


def test_default_server_says_it_is_open_plaintext_on_loopback(
    tmp_path: pathlib.Path,
) -> None:
    service = StandaloneService(tmp_path)
    for _ in _started(service):
        line = server_line(service.process)
        assert "serving plaintext on 127.0.0.1:" in line, line
        assert "WITHOUT AUTHENTICATION" in line and "only processes on this machine" in line
        with grpc.insecure_channel(service.address) as channel:  # as the reference client
            assert Client(channel, ()).CreateAccount(api.CreateAccountRequest()).account.id


def test_tokens_work_over_plaintext_too(
    plain_with_tokens: StandaloneService, tokens: Tokens
) -> None:
    assert "tokens cross the network unencrypted" in server_line(plain_with_tokens.process)
    with grpc.insecure_channel(plain_with_tokens.address) as channel:
        admin = Client(channel, bearer(tokens.write))
        assert_refused_and_nothing_applied(
            admin, Client(channel, ()), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"
        )
        assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
        (["--client-ca", "{ca}"], "--client-ca needs --tls-cert"),
        (["--tls-cert", "{cert}", "--tls-key", "{client_key}"], "does not belong to"),
        (["--tokens-file", "{missing}"], "cannot read tokens file"),
    ],
)
def test_bad_server_flags_fail_in_one_line(
    tmp_path: pathlib.Path, pki: Pki, args: list[str], fragment: str
) -> None:
    values = {
        "cert": pki.server_cert,
        "ca": pki.ca,
        "client_key": pki.client_key,
        "missing": tmp_path / "missing.txt",
    }
    argv = [arg.format(**values) for arg in args]
    for module in ("ledger.cli.standalone", "ledger.cli.gateway"):
        extra = ["--data-dir", str(tmp_path / "data")] if module.endswith("standalone") else []
        result = subprocess.run(
            [sys.executable, "-m", module, "--port", "0", *extra, *argv],
            capture_output=True,
            text=True,
            timeout=cli_timeout_s,
            check=False,
        )
        line = one_line_failure(result)
        assert fragment in line, (module, line)
    assert not (tmp_path / "data").exists()  # refused before the data dir was opened


# -- the gateway of a real cluster -----------------------------------------------------------------


def test_cluster_gateway_with_tls_and_tokens(
    cluster: ClusterService, pki: Pki, tokens: Tokens
) -> None:
    line = server_line(cluster.gateway)
    assert line.startswith("ledger-gateway: serving TLS on") and "bearer tokens" in line
    with grpc.insecure_channel(cluster.address) as channel:
        client = Client(channel, bearer(tokens.write))
        refused(
            lambda: client.CreateAccount(api.CreateAccountRequest()), grpc.StatusCode.UNAVAILABLE
        )
    with tls_channel(cluster.address, pki.ca) as channel:
        assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
        admin = Client(channel, bearer(tokens.write))
        for client, code, reason in (
            (Client(channel, ()), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
            (
                Client(channel, bearer("ledger_wrong")),
                grpc.StatusCode.UNAUTHENTICATED,
                "TOKEN_UNKNOWN",
            ),
            (
                Client(channel, bearer(tokens.read)),
                grpc.StatusCode.PERMISSION_DENIED,
                "INSUFFICIENT_SCOPE",
            ),
        ):
            assert_refused_and_nothing_applied(admin, client, code, reason)
        account_id, _ = funded_account(admin)
        reader = Client(channel, bearer(tokens.read))
        assert (
            reader.GetAccount(api.GetAccountRequest(account_id=account_id)).account.settled_balance
            == 100
        )
        assert SERVICE in list_services(channel, tokens.read)

    seeded = ledger_dev(
        "seed-accounts",
        "--count",
        "2",
        "--gateway",
        cluster.address,
        "--tls-ca",
        str(pki.ca),
        env={"LEDGER_TOKEN": tokens.write},
    )
    assert seeded.returncode == 0, seeded.stderr
    assert len(re.findall(r"created account [0-9a-f]{16}", seeded.stdout)) == 2
    bench = ledger_dev(
        "bench",
        "--gateway",
        cluster.address,
        "--tls-ca",
        str(pki.ca),
        "--json",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--concurrency",
        "4",
        "--accounts",
        "4",
        env={"LEDGER_TOKEN": tokens.write},
    )
    assert bench.returncode == 0, bench.stderr
    assert json.loads(bench.stdout)["errors"] == {}
