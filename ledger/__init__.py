"""Sharded, Raft-replicated ledger service.

Layers, each importing only those above it::

    ledger.limits, ledger.ids      bounds and id/shard arithmetic
    ledger.core                    AccountsCore: deterministic, commands in, results + writes out
    ledger.pb                      generated protobuf code
    ledger.storage                 LevelDB shard store: writes + applied index in one batch
    ledger.stubs                   the LedgerCore protocol and its implementations
    ledger.gateway                 gRPC servicer: validate, stamp now_ns, mint ids, map outcomes
    ledger.client                  Python client library: typed calls, retries, idempotency keys
    ledger.cli                     console scripts
"""
