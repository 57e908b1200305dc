"""Who gets into the node API (``LedgerNode``), and what a stranger's call changes: nothing.

Goal: the node API is served only over TLS with the cluster CA; a caller without the cluster's
per-call credential, or with a credential derived from another secret, gets UNAUTHENTICATED and
applies nothing (a top-up sent straight to the shard leader does not move the balance); health
stays open; authenticated but malformed frames (random bytes, unknown shards, junk command
batches, huge timeouts) never kill a node, never answer OK with an effect, and change nothing;
a node refuses to serve a non-loopback address with the committed development secret.

Method: a real 3-node cluster and gateway (tests/harness.py); raw channels built by hand for
each kind of caller; balances and the node digests compared before and after.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import ClusterService
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import ids, limits
from ledger.config import load_config
from ledger.node.credentials import node_api_token
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc, ledger_node_pb2_grpc
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
call_timeout_s = 10.0
_NODE_SERVICE = "/ledger.internal.v1.LedgerNode/"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterService]:
    service = ClusterService(tmp_path_factory.mktemp("node-auth"))
    try:
        service.start()
        service.wait_all_shards_led()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def account(cluster: ClusterService) -> str:
    with grpc.insecure_channel(cluster.address) as channel:
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        created = stub.CreateAccount(api.CreateAccountRequest(), timeout=call_timeout_s)
        account_id = created.account.id
        stub.CreateTransaction(
            api.CreateTransactionRequest(account_id=account_id, amount=100, settled=True),
            timeout=call_timeout_s,
        )
    return str(account_id)


def balance(cluster: ClusterService, account_id: str) -> tuple[int, int]:
    with grpc.insecure_channel(cluster.address) as channel:
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        found = stub.GetAccount(
            api.GetAccountRequest(account_id=account_id), timeout=call_timeout_s
        ).account
    return found.available_balance, found.settled_balance


def leader_address(cluster: ClusterService, shard: int) -> str:
    return cluster.config.nodes[cluster.wait_all_shards_led()[shard]].address


def top_up(account_id: str, amount: int) -> node_pb.SubmitRequest:
    """What a stranger would send to mint money: a raw command batch for the account's shard."""
    numeric = ids.parse_account_id(account_id)
    command = pb.Command(
        now_ns=1,
        request_id=b"x" * 16,
        create_transaction=pb.CreateTransaction(account_id=numeric, amount=amount, settled=True),
    )
    batch = pb.CommandBatch(commands=[command]).SerializeToString()
    return node_pb.SubmitRequest(
        shards=[node_pb.ShardCommands(shard=ids.shard_index(numeric), command_batch=batch)],
        timeout_ms=5000,
    )


def tls_only(cluster: ClusterService) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=cluster.config.node_tls.ca_cert.encode())


def with_token(cluster: ClusterService, token: str) -> grpc.ChannelCredentials:
    return grpc.composite_channel_credentials(
        tls_only(cluster), grpc.access_token_call_credentials(token)
    )


def test_a_plaintext_caller_cannot_even_connect(cluster: ClusterService) -> None:
    with (
        grpc.insecure_channel(cluster.config.nodes[0].address) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        ledger_node_pb2_grpc.LedgerNodeStub(channel).Status(
            node_pb.StatusRequest(), timeout=call_timeout_s
        )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("credential", ["none", "other-secret", "the-raw-secret"])
def test_a_caller_without_the_cluster_credential_is_refused_and_changes_nothing(
    cluster: ClusterService, account: str, credential: str
) -> None:
    shard = ids.shard_index(ids.parse_account_id(account))
    address = leader_address(cluster, shard)
    credentials = {
        "none": tls_only(cluster),
        "other-secret": with_token(cluster, node_api_token("another cluster's secret!")),
        "the-raw-secret": with_token(cluster, cluster.config.raft_secret),
    }[credential]
    before = balance(cluster, account)
    with grpc.secure_channel(address, credentials) as channel:
        stub = ledger_node_pb2_grpc.LedgerNodeStub(channel)
        for call in (
            lambda: stub.Submit(top_up(account, 1_000_000), timeout=call_timeout_s),
            lambda: stub.Status(node_pb.StatusRequest(), timeout=call_timeout_s),
            lambda: stub.Read(node_pb.ReadRequest(shard=shard), timeout=call_timeout_s),
            lambda: stub.ReadMany(
                node_pb.ReadManyRequest(reads=[node_pb.ReadRequest(shard=shard)]),
                timeout=call_timeout_s,
            ),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=call_timeout_s
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # health stays open
    assert balance(cluster, account) == before


def test_more_shard_batches_than_a_gateway_sends_are_refused(cluster: ClusterService) -> None:
    too_many = limits.node_submit_batches_max + 1
    with cluster.config.node_channel(cluster.config.nodes[0].address) as channel:
        stub = ledger_node_pb2_grpc.LedgerNodeStub(channel)
        for call in (
            lambda: stub.Submit(
                node_pb.SubmitRequest(shards=[node_pb.ShardCommands()] * too_many),
                timeout=call_timeout_s,
            ),
            lambda: stub.ReadMany(
                node_pb.ReadManyRequest(reads=[node_pb.ReadRequest()] * too_many),
                timeout=call_timeout_s,
            ),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_cluster_credential_is_accepted(cluster: ClusterService) -> None:
    with cluster.config.node_channel(cluster.config.nodes[0].address) as channel:
        status = ledger_node_pb2_grpc.LedgerNodeStub(channel).Status(
            node_pb.StatusRequest(), timeout=call_timeout_s
        )
    assert len(status.shards) == 16


frames = st.one_of(
    st.binary(max_size=512),  # random bytes as the whole message
    st.builds(
        lambda shard, blob, timeout: node_pb.SubmitRequest(
            shards=[node_pb.ShardCommands(shard=shard, command_batch=blob)], timeout_ms=timeout
        ).SerializeToString(),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=256),
        st.integers(0, 2**32 - 1),
    ),
    st.builds(
        lambda count, shard: node_pb.SubmitRequest(
            shards=[node_pb.ShardCommands(shard=shard, command_batch=b"") for _ in range(count)]
        ).SerializeToString(),
        st.integers(0, 40),
        st.integers(0, 20),
    ),
    st.builds(
        lambda shard, timeout: node_pb.ReadRequest(
            shard=shard, timeout_ms=timeout
        ).SerializeToString(),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
    ),
    st.builds(
        lambda shards, timeout: node_pb.ReadManyRequest(
            reads=[node_pb.ReadRequest(shard=shard) for shard in shards], timeout_ms=timeout
        ).SerializeToString(),
        st.lists(st.integers(0, 2**32 - 1), max_size=40),
        st.integers(0, 2**32 - 1),
    ),
)


@settings(
    max_examples=90,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(method=st.sampled_from(["Submit", "Read", "ReadMany", "Status"]), frame=frames)
def test_authenticated_but_malformed_frames_change_nothing(
    cluster: ClusterService, account: str, method: str, frame: bytes
) -> None:
    before = balance(cluster, account)
    shard = ids.shard_index(ids.parse_account_id(account))
    with cluster.config.node_channel(leader_address(cluster, shard)) as channel:
        call = channel.unary_unary(_NODE_SERVICE + method)  # raw bytes in, raw bytes out
        try:
            raw = call(frame, timeout=call_timeout_s)
        except grpc.RpcError as error:
            assert error.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ), error
        else:  # a frame that happens to parse is the gateway's business: only well-formed out
            response_type = getattr(node_pb, f"{method}Response")
            response_type.FromString(raw)
    assert all(node.alive() for node in cluster.nodes)
    assert balance(cluster, account) == before


def test_the_development_secret_is_refused_off_loopback(tmp_path: pathlib.Path) -> None:
    config = load_config(REPOSITORY / "cluster_config.json")
    assert config.uses_development_secret
    node_id = config.nodes[0].node_id
    command = [
        sys.executable,
        "-m",
        "ledger.cli.node",
        "--node-id",
        node_id,
        "--cluster-config",
        str(REPOSITORY / "cluster_config.json"),
        "--data-dir",
        str(tmp_path / "data"),
        "--host",
        "192.0.2.1",
    ]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0
    assert "development secret" in refused.stderr and "gen-config" in refused.stderr
    assert not (tmp_path / "data").exists()  # refused before it opened anything
