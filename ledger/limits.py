"""Every limit, default and timeout of the service, with its unit and the reason for its value.

One module so that the bounds are visible together and their relations are checked at import
(TigerBeetle style): a bad combination fails before any process starts. Values marked "tuned"
come from measurements (see README, Performance); the rest are contracts or safety margins.
"""

from __future__ import annotations

# --- Compatibility contract with the reference (data placed today must be found in five years).
shard_count = 16
replica_count = 3
int64_min = -(2**63)
int64_max = 2**63 - 1
uint64_max = 2**64 - 1

# --- Request shape.
description_bytes_max = 1024  # UTF-8 bytes, not characters
idempotency_key_bytes_max = 128  # stored per account and snapshotted, so kept small
page_size_default = 100  # ListTransactions page_size 0 means this
page_size_max = 1000  # larger page sizes are clamped to this
batch_items_max = 1000  # items per CreateTransactions / CreateAccounts call
page_token_chars_max = 64  # a real token is 23 base64url chars (unpadded); refuse parsing junk
grpc_message_bytes_max = 4 * 1024 * 1024  # grpc default; stated so nobody relies on more

# --- Gateway.
deadline_ms_default = 5_000  # used when the client sends no deadline
deadline_ms_max = 60_000  # a longer client deadline is cut to this: retries must end
account_id_attempts_max = 8  # fresh random ids tried when an id is already taken

# --- Exactly-once: results of requests are kept so that retries return them.
request_retention_ns = 5 * 60 * 1_000_000_000  # >> deadline_ms_max: no retry outlives this
request_prune_per_entry_max = 64  # expired request records deleted per entry: at least this,
# and twice the entry's commands (never falls behind)

# --- Transfers.
known_accounts_cache_max = 100_000  # account ids a gateway remembers as existing (~10 MB)

# --- Pending-hold timeouts.
hold_timeout_ms_max = 30 * 24 * 3600 * 1000  # a hold lasts at most 30 days
hold_expiries_per_entry_max = 64  # expired holds cancelled per applied entry (bounded work)

# --- Batching.
batch_commands_max = 256  # commands per applied batch (one Raft entry); tuned
entry_commands_max = 1024  # hard bound per entry: one batch rpc may exceed the above

# --- Standalone.
shutdown_grace_s = 5.0  # in-flight calls get this long on SIGTERM

# --- Public gRPC server (ledger-standalone, ledger-gateway): how many calls one process holds.
# A call passes three bounds; none is an unbounded queue, and what a client sees is OK or
# RESOURCE_EXHAUSTED (tests/integration/test_call_flood.py: 10,000 calls at once, RSS measured).
# 1. Per connection, at most grpc_streams_per_connection_max calls are open (HTTP/2
#    MAX_CONCURRENT_STREAMS); the client queues the rest itself, their deadlines running.
#    Counted as HTTP/2 streams (grpc.http.overload_protection off): gRPC's default also counts
#    streams the server has not freed yet and refuses calls the client was allowed to open
#    (REFUSED_STREAM, which the client reports as UNAVAILABLE).
# 2. Calls that arrived but that the event loop has not picked up yet wait in gRPC core, at most
#    grpc_pending_calls_max. gRPC's default (random refusals from 1,000 waiting, all from 3,000)
#    cancels calls (CANCELLED, undocumented) as soon as one client opens a few thousand at once.
#    The bound covers every open stream of pending / per-connection = 16 busy connections; only
#    more connections than that, all full at once, can still see CANCELLED.
# 3. At most grpc_concurrent_calls_max calls run in handlers at once (all connections); beyond
#    that a call gets RESOURCE_EXHAUSTED at once, before its request is read (grpc.aio's
#    maximum_concurrent_rpcs). 1,000 calls is about a second of work at the measured single-call
#    rate (README, Performance), well inside the default deadline, so admitted calls finish.
#    Memory follows the open calls: a few KiB each for ordinary calls (10,000 at once: +15 to +35
#    MiB), but an open call, running or waiting, can hold its whole request (measured: 3,000 junk
#    requests of 1 MB over 16 connections peak at +2.7 GB). These bounds cap the number of calls,
#    not their bytes; a byte budget needs gRPC core's resource quota, which grpcio does not expose,
#    or a smaller grpc_message_bytes_max (the largest valid request is ~1.2 MB).
grpc_streams_per_connection_max = 256  # calls open per client connection (HTTP/2 streams)
grpc_pending_calls_max = 4_096  # calls received, not yet picked up by the event loop
grpc_concurrent_calls_max = 1_000  # calls in handlers at once, per server process

assert shard_count == 16 and (256 % shard_count) == 0
assert 0 < page_size_default <= page_size_max
assert description_bytes_max > 0 and 0 < idempotency_key_bytes_max <= 1024
assert 0 < deadline_ms_default <= deadline_ms_max
assert request_retention_ns > deadline_ms_max * 1_000_000 * 2
assert request_prune_per_entry_max > 0
assert 0 < batch_commands_max <= entry_commands_max
assert batch_items_max <= entry_commands_max  # one batch call for one shard fits one entry
assert 100 <= grpc_streams_per_connection_max <= grpc_concurrent_calls_max  # RFC 9113 asks >= 100
assert grpc_pending_calls_max >= 4 * grpc_streams_per_connection_max  # a few busy connections

# --- Gateway -> node routing (cluster).
submit_queue_depth_max = 10_000  # queued calls per shard; when full, refuse at once
shard_batches_in_flight_max = 1  # batches per shard on the wire at once (pipelining)
leader_backoff_ms_min = 20  # first pause after a refusal; doubles per retry
leader_backoff_ms_max = 200  # retries continue until the call's deadline, never past it
node_attempt_timeout_s = 1.5  # one attempt on one node; a paused node costs no more
deadline_margin_s = 0.05  # answer UNAVAILABLE this long before the client gives up

assert 0 < leader_backoff_ms_min <= leader_backoff_ms_max < deadline_ms_default
assert node_attempt_timeout_s * 1000 < deadline_ms_default
assert shard_batches_in_flight_max > 0 and submit_queue_depth_max > 0
group_commit_linger_max_ms = 20  # a busy gateway->node link waits at most this to fill a Submit
group_commit_linger_rtt_fraction = 0.5  # ... and at most this share of its last round trip
# A read link's round trip is one ReadIndex probe round (no journal, no apply), a few times
# shorter than a Submit's: half of it filled few batches (1.6 reads per probe at 64 readers).
# Twice it gave 2.7 reads per probe, 1.5x the reads/s and a quarter less node CPU; a lone
# reader still never waits.
group_commit_read_linger_rtt_fraction = 2.0
node_submit_batches_max = 64  # shard batches per Submit rpc

assert 0 <= group_commit_linger_max_ms < leader_backoff_ms_max
assert 0 <= group_commit_linger_rtt_fraction <= 1
assert 0 <= group_commit_read_linger_rtt_fraction <= 5

assert node_submit_batches_max >= shard_count
