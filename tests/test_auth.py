"""Unit tests of ``ledger.gateway.auth`` (tokens, scopes, the interceptor) and of the client
side of ``ledger.cli.client`` (TLS options, the token on every call).

The interceptor is exercised on an in-process ``grpc.aio`` server whose handlers record every
call that reaches them: a refused call must never get there, whatever the rpc's shape.
"""

from __future__ import annotations

import asyncio
import hashlib
import pathlib
import stat
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tls_material import make_pki

from ledger.cli.client import ClientSecurity, api_stub
from ledger.gateway import auth
from ledger.gateway.errors import ERROR_DOMAIN
from ledger.pb import ledger_api_pb2 as api

API = "/com.evrblk.monstera_example.ledger.gatewaypb.LedgerServiceApi/"
# Every rpc of the service, by the scope it needs: a new rpc fails the test below until it is
# placed here (its Get*/List* name alone makes it a read; anything else is a write).
WRITE_RPCS = [
    "CreateAccount",
    "CreateTransaction",
    "SettleTransaction",
    "CancelTransaction",
    "CreateTransactions",
    "CreateAccounts",
    "CreateTransfer",
]
READ_RPCS = ["GetAccount", "GetTransaction", "ListTransactions", "GetTransfer"]


def table(*entries: tuple[str, str, str]) -> auth.TokenTable:
    text = "\n".join(auth.token_line(token, scope, name) for token, scope, name in entries)
    return auth.TokenTable(auth.parse_tokens(text, "test"))


# -- tokens and the token file ---------------------------------------------------------------------


def test_new_tokens_are_random_and_prefixed() -> None:
    tokens = {auth.new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert token.startswith("ledger_") and len(token) == len("ledger_") + 43


def test_token_line_holds_the_hash_never_the_token() -> None:
    token = auth.new_token()
    line = auth.token_line(token, "write", "ci-bot")
    assert token not in line
    assert line == f"sha256:{hashlib.sha256(token.encode()).hexdigest()} write ci-bot"


def test_parse_tokens_skips_comments_and_blank_lines() -> None:
    text = (
        "# a comment\n\n"
        + auth.token_line("t1", "read", "alice")
        + "\n  \n"
        + auth.token_line("t2", "write", "bob")
        + "\n"
    )
    entries = auth.parse_tokens(text, "f")
    assert [(e.scope, e.name) for e in entries] == [("read", "alice"), ("write", "bob")]
    assert entries[0].digest == hashlib.sha256(b"t1").digest()


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("sha256:" + "a" * 64 + " read", "expected 'sha256:<64 hex> <scope> <name>'"),
        ("sha256:" + "a" * 63 + " read alice", "64 lowercase hex"),
        ("sha256:" + "A" * 64 + " read alice", "64 lowercase hex"),
        ("md5:" + "a" * 64 + " read alice", "64 lowercase hex"),
        ("ledger_plaintexttoken read alice", "never tokens"),
        ("sha256:" + "a" * 64 + " admin alice", "scope 'admin'"),
        ("sha256:" + "a" * 64 + " read al/ice", "token name"),
    ],
)
def test_parse_tokens_refuses_bad_lines_with_file_and_line(line: str, fragment: str) -> None:
    with pytest.raises(auth.TokenFileError) as caught:
        auth.parse_tokens("# header\n" + line + "\n", "tokens.txt")
    assert str(caught.value).startswith("tokens.txt:2: ")
    assert fragment in str(caught.value)


def test_parse_tokens_refuses_duplicate_names_and_hashes() -> None:
    with pytest.raises(auth.TokenFileError, match="name 'alice' appears twice"):
        auth.parse_tokens(
            auth.token_line("t1", "read", "alice") + "\n" + auth.token_line("t2", "read", "alice"),
            "f",
        )
    with pytest.raises(auth.TokenFileError, match="same token hash"):
        auth.parse_tokens(
            auth.token_line("t1", "read", "alice") + "\n" + auth.token_line("t1", "write", "bob"),
            "f",
        )


def test_append_token_creates_a_private_file_and_refuses_duplicates(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tokens.txt"
    first, second = auth.new_token(), auth.new_token()
    auth.append_token(path, first, "write", "alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    auth.append_token(path, second, "read", "bob")
    entries = auth.read_token_file(path)
    assert [(e.scope, e.name) for e in entries] == [("write", "alice"), ("read", "bob")]
    assert first not in path.read_text() and second not in path.read_text()
    with pytest.raises(auth.TokenFileError, match="already holds a token named 'bob'"):
        auth.append_token(path, auth.new_token(), "read", "bob")
    with pytest.raises(auth.TokenFileError, match="already holds this token"):
        auth.append_token(path, first, "read", "carol")
    assert len(auth.read_token_file(path)) == 2


def test_lookup_finds_the_entry_and_nothing_else() -> None:
    tokens = table(("r", "read", "reader"), ("w", "write", "writer"))
    found = tokens.lookup("w")
    assert found is not None and (found.name, found.scope) == ("writer", "write")
    assert tokens.lookup("r") is not None
    assert tokens.lookup("x") is None
    assert tokens.lookup("") is None
    assert tokens.counts() == {"read": 1, "write": 1}


# -- scopes and the check ------------------------------------------------------------------------


def test_every_api_rpc_has_the_documented_scope() -> None:
    methods = {m.name for m in api.DESCRIPTOR.services_by_name["LedgerServiceApi"].methods}
    assert methods == set(WRITE_RPCS) | set(READ_RPCS)
    for name in READ_RPCS:
        assert auth.required_scope(API + name) == "read"
    for name in WRITE_RPCS:
        assert auth.required_scope(API + name) == "write"


def test_health_is_open_reflection_is_read_unknown_is_write() -> None:
    assert auth.required_scope("/grpc.health.v1.Health/Check") is None
    assert auth.required_scope("/grpc.health.v1.Health/Watch") is None
    assert (
        auth.required_scope("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        == "read"
    )
    assert auth.required_scope("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") == (
        "read"
    )
    assert auth.required_scope(API + "DropEverything") == "write"
    assert auth.required_scope("/other.Service/GetAccount") == "write"


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ((), None),
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer   abc "),), "abc"),
        ((("authorization", b"Bearer abc"),), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer"),), None),
        ((("authorization", "Bearer a"), ("authorization", "Bearer b")), None),
        ((("x-other", "Bearer abc"),), None),
    ],
)
def test_bearer_token(metadata: Any, expected: str | None) -> None:
    assert auth.bearer_token(metadata) == expected


def test_check_call_outcomes() -> None:
    tokens = table(("r", "read", "reader"), ("w", "write", "writer"))

    def bearer(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),)

    missing = auth.check_call(tokens, API + "GetAccount", ())
    assert missing is not None
    assert (missing.code, missing.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    unknown = auth.check_call(tokens, API + "GetAccount", bearer("nope"))
    assert unknown is not None
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_UNKNOWN")
    too_long = auth.check_call(tokens, API + "GetAccount", bearer("w" * 10_000))
    assert too_long is not None and too_long.reason == "TOKEN_UNKNOWN"
    denied = auth.check_call(tokens, API + "CreateTransaction", bearer("r"))
    assert denied is not None
    assert (denied.code, denied.reason) == (grpc.StatusCode.PERMISSION_DENIED, "INSUFFICIENT_SCOPE")
    assert denied.metadata == {"required_scope": "write", "token_scope": "read"}
    assert auth.check_call(tokens, API + "GetAccount", bearer("r")) is None
    assert auth.check_call(tokens, API + "GetAccount", bearer("w")) is None
    assert auth.check_call(tokens, API + "CreateTransaction", bearer("w")) is None
    assert auth.check_call(tokens, "/grpc.health.v1.Health/Check", ()) is None


# -- the interceptor on a real in-process server ----------------------------------------------


class _Recorder:
    """Generic handlers of every shape; records each call that reaches them."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def handler(self) -> grpc.GenericRpcHandler:
        async def unary(request: bytes, context: Any) -> bytes:
            self.calls.append("unary")
            return request

        async def streaming(requests: Any, context: Any) -> Any:
            self.calls.append("stream")
            async for request in requests:
                yield request

        return grpc.method_handlers_generic_handler(
            API.strip("/"),
            {
                "CreateTransaction": grpc.unary_unary_rpc_method_handler(unary),
                "GetAccount": grpc.unary_unary_rpc_method_handler(unary),
                "CreateAccounts": grpc.stream_stream_rpc_method_handler(streaming),
            },
        )


async def _interceptor_scenario() -> tuple[list[str], list[tuple[str, str, str | None]]]:
    tokens = table(("r", "read", "reader"), ("w", "write", "writer"))
    recorder = _Recorder()
    server = grpc.aio.server(interceptors=[auth.AuthInterceptor(tokens)])
    server.add_generic_rpc_handlers((recorder.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    outcomes: list[tuple[str, str, str | None]] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            unary = {
                name: channel.unary_unary(API + name)
                for name in ("CreateTransaction", "GetAccount")
            }
            stream = channel.stream_stream(API + "CreateAccounts")
            cases: list[tuple[str, str | None]] = [
                ("CreateTransaction", None),
                ("CreateTransaction", "bad"),
                ("CreateTransaction", "r"),
                ("CreateTransaction", "w"),
                ("GetAccount", None),
                ("GetAccount", "r"),
                ("CreateAccounts", None),
                ("CreateAccounts", "r"),
                ("CreateAccounts", "w"),
            ]
            for name, token in cases:
                metadata = () if token is None else (("authorization", f"Bearer {token}"),)
                try:
                    if name == "CreateAccounts":
                        call = stream(iter([b"x"]), metadata=metadata, timeout=5)
                        async for _ in call:
                            pass
                    else:
                        await unary[name](b"x", metadata=metadata, timeout=5)
                except grpc.aio.AioRpcError as error:
                    status = rpc_status.from_call(error)
                    reason = None
                    if status is not None:
                        info = error_details_pb2.ErrorInfo()
                        assert status.details[0].Unpack(info)
                        assert info.domain == ERROR_DOMAIN
                        reason = info.reason
                    outcomes.append((f"{name}/{token}", error.code().name, reason))
                else:
                    outcomes.append((f"{name}/{token}", "OK", None))
    finally:
        await server.stop(None)
    return recorder.calls, outcomes


def test_interceptor_refuses_before_any_handler_runs() -> None:
    calls, outcomes = asyncio.run(_interceptor_scenario())
    assert outcomes == [
        ("CreateTransaction/None", "UNAUTHENTICATED", "TOKEN_MISSING"),
        ("CreateTransaction/bad", "UNAUTHENTICATED", "TOKEN_UNKNOWN"),
        ("CreateTransaction/r", "PERMISSION_DENIED", "INSUFFICIENT_SCOPE"),
        ("CreateTransaction/w", "OK", None),
        ("GetAccount/None", "UNAUTHENTICATED", "TOKEN_MISSING"),
        ("GetAccount/r", "OK", None),
        ("CreateAccounts/None", "UNAUTHENTICATED", "TOKEN_MISSING"),
        ("CreateAccounts/r", "PERMISSION_DENIED", "INSUFFICIENT_SCOPE"),
        ("CreateAccounts/w", "OK", None),
    ]
    assert calls == ["unary", "unary", "stream"]  # only the three admitted calls


# -- server security from the flags ---------------------------------------------------------------


def test_load_server_security_checks_the_files(tmp_path: pathlib.Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tokens_file = tmp_path / "tokens.txt"
    auth.append_token(tokens_file, auth.new_token(), "write", "w")

    plain = auth.load_server_security(None, None, None, None)
    assert plain.credentials is None and plain.tokens is None and plain.interceptors() == []
    full = auth.load_server_security(pki.server_cert, pki.server_key, pki.ca, tokens_file)
    assert full.credentials is not None and full.tokens is not None
    assert len(full.interceptors()) == 1

    def refused(*args: Any) -> str:
        with pytest.raises(ValueError) as caught:
            auth.load_server_security(*args)
        return str(caught.value)

    assert "go together" in refused(pki.server_cert, None, None, None)
    assert "go together" in refused(None, pki.server_key, None, None)
    assert "--client-ca needs --tls-cert" in refused(None, None, pki.ca, None)
    assert "does not belong to" in refused(pki.server_cert, pki.client_key, None, None)
    assert "expected a PEM certificate" in refused(pki.server_key, pki.server_key, None, None)
    assert "No such file" in refused(tmp_path / "missing.pem", pki.server_key, None, None)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    assert "holds no token" in refused(None, None, None, empty)
    bad = tmp_path / "bad.txt"
    bad.write_text("ledger_abc write me\n")
    assert refused(None, None, None, bad).startswith(f"{bad}:1: ")


def test_startup_line_says_what_is_served_and_to_whom(tmp_path: pathlib.Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tokens_file = tmp_path / "tokens.txt"
    auth.append_token(tokens_file, auth.new_token(), "write", "w")
    auth.append_token(tokens_file, auth.new_token(), "read", "r")
    plain = auth.ServerSecurity().describe("127.0.0.1", 8000, loopback=True)
    assert plain.startswith("serving plaintext on 127.0.0.1:8000")
    assert "WITHOUT AUTHENTICATION" in plain and "only processes on this machine" in plain
    everywhere = auth.ServerSecurity().describe("0.0.0.0", 8000, loopback=False)
    assert "any address of this machine on port 8000" in everywhere
    secured = auth.load_server_security(pki.server_cert, pki.server_key, None, tokens_file)
    line = secured.describe("10.0.0.5", 8000, loopback=False)
    assert line.startswith("serving TLS on 10.0.0.5:8000, bearer tokens required (1 read, 1 write")
    assert "anyone who can reach 10.0.0.5:8000" in line and "WITHOUT" not in line
    mtls = auth.load_server_security(pki.server_cert, pki.server_key, pki.ca, None)
    assert "client certificates signed by" in mtls.describe("127.0.0.1", 1, loopback=True)
    plain_tokens = auth.load_server_security(None, None, None, tokens_file)
    assert "unencrypted" in plain_tokens.describe("127.0.0.1", 1, loopback=True)


# -- the client side -----------------------------------------------------------------------------


class _FakeCall:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def __call__(self, request: Any, **kwargs: Any) -> str:
        self.seen.append(("call", kwargs))
        return "response"

    def future(self, request: Any, **kwargs: Any) -> str:
        self.seen.append(("future", kwargs))
        return "future"


class _FakeChannel:
    def __init__(self) -> None:
        self.calls: dict[str, _FakeCall] = {}

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> _FakeCall:
        return self.calls.setdefault(method.rsplit("/", 1)[1], _FakeCall())


def test_api_stub_sends_the_token_on_every_call() -> None:
    channel = _FakeChannel()
    stub = api_stub(channel, ClientSecurity(token="tok"))  # type: ignore[arg-type]
    assert stub.GetAccount(api.GetAccountRequest(), timeout=1) == "response"
    assert stub.CreateAccounts.future(api.CreateAccountsRequest(), timeout=2) == "future"
    stub.GetAccount(api.GetAccountRequest(), metadata=(("x-trace", "1"),))
    bearer = ("authorization", "Bearer tok")
    assert channel.calls["GetAccount"].seen == [
        ("call", {"metadata": (bearer,), "timeout": 1}),
        ("call", {"metadata": (bearer, ("x-trace", "1"))}),
    ]
    assert channel.calls["CreateAccounts"].seen == [
        ("future", {"metadata": (bearer,), "timeout": 2})
    ]


def test_api_stub_without_a_token_is_the_plain_stub() -> None:
    channel = _FakeChannel()
    stub = api_stub(channel)  # type: ignore[arg-type]
    stub.GetAccount(api.GetAccountRequest(), timeout=1)
    assert channel.calls["GetAccount"].seen == [("call", {"timeout": 1})]
    assert isinstance(stub.GetAccount, _FakeCall)


def test_client_security_options(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = make_pki(tmp_path / "pki")
    plain = ClientSecurity.load()
    assert not plain.tls and plain.metadata == () and plain.credentials() is None
    secured = ClientSecurity.load(pki.ca, " tok ", pki.client_cert, pki.client_key)
    assert secured.tls and secured.token == "tok" and secured.credentials() is not None
    assert secured.child_args() == [
        "--tls-ca",
        str(pki.ca),
        "--tls-cert",
        str(pki.client_cert),
        "--tls-key",
        str(pki.client_key),
    ]
    monkeypatch.setenv("LEDGER_TOKEN", "inherited")
    assert secured.child_env()["LEDGER_TOKEN"] == "tok"
    assert "LEDGER_TOKEN" not in plain.child_env()
    assert "tok" not in repr(secured.child_args())
    with pytest.raises(ValueError, match="go together"):
        ClientSecurity.load(pki.ca, None, pki.client_cert, None)
    with pytest.raises(ValueError, match="needs --tls-ca"):
        ClientSecurity.load(None, None, pki.client_cert, pki.client_key)
    with pytest.raises(ValueError, match="--tls-ca"):
        ClientSecurity.load(tmp_path / "missing.pem")
