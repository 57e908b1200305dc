"""Replication layer: the adapter that decodes replicated commands and applies them to a shard."""
