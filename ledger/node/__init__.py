"""The node process: its replicas of the shard Raft groups and the internal gRPC node API."""
