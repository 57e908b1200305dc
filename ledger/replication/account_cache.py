"""A write-through cache of a shard's account records, owned by its state machine.

Almost every command reads one account record, and LevelDB's lookup (plus its Python
binding) is a large part of an apply. The cache holds the committed bytes of recently used
account keys: filled on a read miss, updated from every commit's write set, emptied on a
snapshot restore. It only ever holds what the committed store holds, so results are the same
with a cold or a warm cache and replicas cannot diverge because of it. Bounded: when full it
is emptied (simple, and a full cache means the working set is larger than it anyway).
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.core.records import ACCOUNT_PREFIX
from ledger.storage.base import ShardStore

__all__ = ["AccountCache", "cached_accounts_max"]

cached_accounts_max = 16_384  # per shard: ~16 shards x 16k x ~200 B = ~50 MiB per node at most
_ACCOUNT_BYTE = ACCOUNT_PREFIX[0]


class AccountCache:
    """Gets for the apply path: account keys from the cache, everything else from the store."""

    def __init__(self, store: ShardStore) -> None:
        self._store = store
        self._accounts: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key[0] != _ACCOUNT_BYTE:
            return self._store.get(key)
        try:
            return self._accounts[key]
        except KeyError:
            value = self._store.get(key)
            if len(self._accounts) >= cached_accounts_max:
                self._accounts.clear()
            self._accounts[key] = value
            return value

    def written(self, writes: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Call after every commit with its writes: cached keys take their new values."""
        accounts = self._accounts
        for key, value in writes:
            if key in accounts:
                accounts[key] = value

    def clear(self) -> None:
        self._accounts.clear()
