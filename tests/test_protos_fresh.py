"""The committed protobuf/gRPC stubs in ``ledger/pb`` are exactly what the ``.proto`` files make.

Goal: nobody edits a ``.proto`` without regenerating, and nobody hand-edits generated code.
Method: regenerate with ``ledger.tools.protogen.generate`` (the same code path as
``python -m ledger.tools.protogen``) into a temporary directory and compare bytes, file by file.
"""

from __future__ import annotations

import pathlib

import ledger.pb
from ledger.tools import protogen

COMMITTED = pathlib.Path(ledger.pb.__file__).parent


def test_generated_stubs_are_fresh(tmp_path: pathlib.Path) -> None:
    written = protogen.generate(tmp_path)
    fresh = {path.name: path for path in written}
    committed = {path.name: path for path in COMMITTED.glob("*_pb2*.py*")}
    assert fresh, "protogen wrote nothing"
    # Every .proto has its three generated files.
    for proto in protogen.proto_files():
        stem = proto.stem
        assert {f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"} <= set(fresh)
    assert sorted(committed) == sorted(fresh), "stale or missing generated files in ledger/pb"
    stale = [
        name for name in sorted(fresh) if fresh[name].read_bytes() != committed[name].read_bytes()
    ]
    assert not stale, f"regenerate with `python -m ledger.tools.protogen`: {stale} differ"
