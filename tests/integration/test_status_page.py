"""The gateway's status page (``ledger-gateway --http-port``) in a real browser.

Goal: an operator who opens the page sees the cluster as it is: 3 nodes up, 16 shards with one
leader each, the calls just made; and, within seconds of a node dying, that node marked down
and its replicas not answering. Method: a 3-node cluster and a gateway with ``--http-port`` on
free ports in a temp dir (``ClusterService``), a few good and bad calls, then headless
Chromium loads the page (``--dump-dom`` after its script ran, and a screenshot kept in the
test's temp dir), before and after a SIGKILL of one node; ``/status.json`` is checked directly
too. Without Chromium (``tests/system_packages.sh`` installs it) the test skips and says why.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any, NoReturn

import grpc
import pytest
from harness import ClusterService, free_port, wait_until

from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
chromium_timeout_s = 90.0
virtual_time_budget_ms = 4000  # the page polls every second: room for a few fetches
node_down_timeout_s = 20.0  # polls every ~1 s, 1 s status timeout, plus a Chromium run
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


class _Dom(HTMLParser):
    """The hooks the page promises (see ledger/gateway/status_html.py), from a dumped DOM."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.rows: dict[str, dict[str, str]] = {}  # tr id -> attributes
        self.replicas: dict[str, list[dict[str, str]]] = {}  # shard row id -> replica cells
        self._row = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "body":
            self.body = values
        elif tag == "tr" and "id" in values:
            self._row = values["id"]
            self.rows[self._row] = values
        elif tag == "td" and "data-replica-node" in values:
            self.replicas.setdefault(self._row, []).append(values)

    def nodes(self) -> dict[str, str]:
        return {
            row["data-node-id"]: row["data-node-state"]
            for row in self.rows.values()
            if "data-node-id" in row
        }

    def shards(self) -> dict[str, dict[str, str]]:
        return {key: row for key, row in self.rows.items() if "data-shard" in row}


def _chromium(tmp_path: pathlib.Path, url: str, *extra: str) -> str:
    """Run headless Chromium on ``url`` in a fresh profile; its stdout. Skips when it cannot
    run at all, printing why."""
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
    try:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its helper processes share the group: killed together
        )
    except OSError as error:
        _skip(f"Chromium did not start: {error}")
    try:
        stdout, stderr = process.communicate(timeout=chromium_timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"Chromium did not finish within {chromium_timeout_s}s") from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if process.returncode != 0:
        raise AssertionError(f"Chromium exited {process.returncode}:\n{stderr[-3000:]}")
    return stdout


def _skip(reason: str) -> NoReturn:
    print(f"SKIPPED: {reason}")
    pytest.skip(reason)


def _dom(tmp_path: pathlib.Path, url: str) -> _Dom:
    html = _chromium(tmp_path, url, "--dump-dom", f"--virtual-time-budget={virtual_time_budget_ms}")
    return _Dom(html)


def _screenshot(tmp_path: pathlib.Path, url: str, name: str) -> pathlib.Path:
    path = tmp_path / name
    _chromium(
        tmp_path,
        url,
        f"--screenshot={path}",
        "--window-size=1400,1800",
        f"--virtual-time-budget={virtual_time_budget_ms}",
    )
    assert path.exists() and path.stat().st_size > 10_000, f"no screenshot at {path}"
    print(f"status page screenshot: {path}")
    return path


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/json"
        document: dict[str, Any] = json.loads(answer.read())
        return document


@pytest.fixture
def chromium_ready(tmp_path: pathlib.Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        _skip(f"{CHROMIUM} is not installed (tests/system_packages.sh installs it, as root)")
    page = tmp_path / "probe.html"
    page.write_text("<p id=p>static</p><script>p.textContent = 'scripted'</script>")
    try:
        html = _chromium(tmp_path, page.as_uri(), "--dump-dom")
    except AssertionError as error:
        _skip(f"Chromium does not run here: {error}")
    if "scripted" not in html:
        _skip(f"Chromium ran no script; it printed: {html[:500]!r}")


@pytest.fixture
def cluster(tmp_path: pathlib.Path, chromium_ready: None) -> Iterator[tuple[ClusterService, int]]:
    http_port = free_port()
    service = ClusterService(tmp_path, gateway_args=["--http-port", str(http_port)])
    try:
        service.start()
        yield service, http_port
    finally:
        service.stop()


def _make_calls(cluster: ClusterService) -> None:
    with grpc.insecure_channel(cluster.address) as channel:
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        for _ in range(6):
            account = stub.CreateAccount(api.CreateAccountRequest(), timeout=10).account
            stub.CreateTransaction(
                api.CreateTransactionRequest(account_id=account.id, amount=10, settled=True),
                timeout=10,
            )
        for _ in range(2):
            with pytest.raises(grpc.RpcError):
                stub.GetAccount(api.GetAccountRequest(account_id="not-an-id"), timeout=10)


def test_the_page_shows_the_cluster_and_a_dead_node(
    cluster: tuple[ClusterService, int], tmp_path: pathlib.Path
) -> None:
    service, http_port = cluster
    url = f"http://127.0.0.1:{http_port}/"
    node_ids = [node.node_id for node in service.config.nodes]
    _make_calls(service)

    def settled() -> dict[str, Any] | None:
        status = _status(http_port)
        calls = {rpc["method"]: rpc for rpc in status["rpcs"]}
        summary = status["summary"]
        healthy = summary["nodes_up"] == 3 and summary["shards_with_leader"] == 16
        counted = calls["CreateAccount"]["calls_total"] == 6
        return status if healthy and counted else None

    status = wait_until(settled, 30.0, interval_s=0.5, what="a snapshot of the healthy cluster")
    calls = {rpc["method"]: rpc for rpc in status["rpcs"]}
    assert calls["GetAccount"]["errors_by_code"] == {"INVALID_ARGUMENT": 2}
    assert calls["CreateTransaction"]["p99_ms"] is not None
    assert [shard["shard"] for shard in status["shards"]] == list(range(16))
    assert status["unreachable_nodes"] == []

    # A leader may be handing its shard back to the preferred node for a moment: poll, bounded.
    def healthy_page() -> _Dom | None:
        dom = _dom(tmp_path, url)
        assert dom.body.get("data-loaded") == "true", "the page's script drew no snapshot"
        led = [row for row in dom.shards().values() if row["data-shard-state"] == "led"]
        return dom if len(led) == 16 else None

    dom = wait_until(healthy_page, 30.0, interval_s=0.2, what="the page to show 16 led shards")
    assert dom.nodes() == dict.fromkeys(node_ids, "up")
    shards = dom.shards()
    assert sorted(int(row["data-shard"]) for row in shards.values()) == list(range(16))
    for row_id, row in shards.items():
        assert row["data-shard-state"] == "led" and row["data-leader"] in node_ids, row
        cells = dom.replicas[row_id]
        assert len(cells) == 3 and all(c["data-replica-state"] == "answered" for c in cells)
        leaders = [c["data-replica-node"] for c in cells if "leader" in c["class"].split()]
        assert leaders == [row["data-leader"]], (row_id, cells)
    assert {"rpc-CreateAccount", "rpc-GetAccount", "rpc-CreateTransfer"} <= set(dom.rows)
    _screenshot(tmp_path, url, "status.png")

    victim = node_ids[1]
    service.nodes[1].kill9()

    def marked_down() -> _Dom | None:
        dom = _dom(tmp_path, url)
        if dom.nodes().get(victim) != "down":
            return None
        cells = [c for cells in dom.replicas.values() for c in cells]
        victims = [c for c in cells if c["data-replica-node"] == victim]
        assert len(victims) == 16
        return dom if all(c["data-replica-state"] == "down" for c in victims) else None

    dom = wait_until(marked_down, node_down_timeout_s, interval_s=0.2, what="the node marked down")
    assert {node: state for node, state in dom.nodes().items() if node != victim} == dict.fromkeys(
        [node_ids[0], node_ids[2]], "up"
    )
    status = _status(http_port)
    down = [node for node in status["nodes"] if not node["up"]]
    assert [node["node_id"] for node in down] == [victim] and down[0]["error"], down
    assert [node["node_id"] for node in status["unreachable_nodes"]] == [victim]
    for shard in status["shards"]:
        (replica,) = [r for r in shard["replicas"] if r["node_id"] == victim]
        assert replica["answered"] is False and replica["applied_index"] is None

    # The shards it led elect new leaders among the other two; the page follows.
    def all_led_again() -> _Dom | None:
        dom = _dom(tmp_path, url)
        rows = dom.shards().values()
        return dom if all(row["data-leader"] not in ("", victim) for row in rows) else None

    wait_until(all_led_again, 60.0, interval_s=0.5, what="every shard led by a live node")
    _screenshot(tmp_path, url, "status-node-down.png")
