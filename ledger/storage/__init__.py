"""Shard stores: LevelDB (plyvel) for the service, in-memory for tests. Same narrow interface."""

from ledger.storage.base import META_PREFIX, Overlay, ShardStore
from ledger.storage.leveldb import LevelDBShardStore
from ledger.storage.memory import MemoryShardStore

__all__ = ["META_PREFIX", "LevelDBShardStore", "MemoryShardStore", "Overlay", "ShardStore"]
