"""An in-process LedgerServiceApi over real gRPC, whose answers each test writes.

A test registers a handler per rpc (``FakeLedger.on``): it gets the request and returns the
response, raises ``Fail`` to answer a status (with an ``ErrorInfo`` shaped as the gateway's
when a reason is given; any code with any reason, so tests need no server state), or sleeps to
make the client's attempt time out. Every call is recorded (``seen``) with its request,
metadata and the deadline it carried, so tests check what the client sent: keys, batch sizes,
page tokens, timeouts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger.gateway.errors import ERROR_DOMAIN
from ledger.pb import ledger_api_pb2 as api

SERVICE = api.DESCRIPTOR.services_by_name["LedgerServiceApi"]

Handler = Callable[[Any], Message]


class Fail(Exception):
    """Answer the call with this status; ``reason`` None: a plain status, no ErrorInfo."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str = "failed",
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason
        self.metadata = dict(metadata or {})

    def status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])
        return rpc_status.to_status(status)


@dataclasses.dataclass(frozen=True)
class Seen:
    method: str
    request: Any
    metadata: dict[str, str]
    timeout_s: float | None  # what was left of the call's deadline when it arrived


def script(*outcomes: Message | Fail | Handler) -> Handler:
    """A handler answering with each outcome in turn (the last one repeats): a response, a
    ``Fail`` to raise, or a handler to call."""
    remaining = list(outcomes)
    lock = threading.Lock()

    def handle(request: Any) -> Message:
        with lock:
            outcome = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        if isinstance(outcome, Fail):
            raise outcome
        if isinstance(outcome, Message):
            return outcome
        return outcome(request)

    return handle


class FakeLedger:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def on(self, method: str, *outcomes: Message | Fail | Handler) -> None:
        assert method in SERVICE.methods_by_name, method
        self._handlers[method] = script(*outcomes)

    def calls(self, method: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.method == method]

    def requests(self, method: str) -> list[Any]:
        return [seen.request for seen in self.calls(method)]

    def _answer(self, method: str) -> Callable[[Any, grpc.ServicerContext], Message]:
        def answer(request: Any, context: grpc.ServicerContext) -> Message:
            seen = Seen(
                method,
                request,
                {key: value for key, value in context.invocation_metadata()},
                context.time_remaining(),
            )
            with self._lock:
                self.seen.append(seen)
                handler = self._handlers.get(method)
            try:
                if handler is None:
                    raise Fail(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not scripted")
                return handler(request)
            except Fail as failure:
                if failure.reason is None:
                    context.abort(failure.code, failure.message)
                context.abort_with_status(failure.status())
                raise AssertionError("abort returned") from None

        return answer

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on a free loopback port; yields its ``host:port``."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = {
            method.name: grpc.unary_unary_rpc_method_handler(
                self._answer(method.name),
                request_deserializer=getattr(api, method.input_type.name).FromString,
                response_serializer=lambda message: message.SerializeToString(),
            )
            for method in SERVICE.methods
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.stop(grace=None).wait()


def unavailable(reason: str | None = "SHARD_UNAVAILABLE") -> Fail:
    return Fail(grpc.StatusCode.UNAVAILABLE, "shard has no quorum", reason)


def item_failure(code: grpc.StatusCode, message: str, reason: str) -> api.ItemStatus:
    return api.ItemStatus(code=code.value[0], message=message, reason=reason)
