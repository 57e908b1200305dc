"""The public gRPC API: validate, stamp ``now_ns``, mint ids, route through a stub, map outcomes."""
