"""Generate the Python protobuf and gRPC stubs in ``ledger/pb`` from ``proto/``.

Run ``python -m ledger.tools.protogen`` after editing a ``.proto``. The protos live under
``proto/ledger/pb/`` so the generated imports read ``from ledger.pb import ...`` without any
post-processing. ``tests/test_protos_fresh.py`` regenerates into a temporary directory and fails
when the committed stubs are stale.
"""

from __future__ import annotations

import pathlib

import grpc_tools
from grpc_tools import protoc

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_PACKAGE_DIR = PROTO_ROOT / "ledger" / "pb"


def proto_files() -> list[pathlib.Path]:
    """All .proto files of the project, in a stable order."""
    return sorted(PROTO_PACKAGE_DIR.glob("*.proto"))


def generate(out_root: pathlib.Path) -> list[pathlib.Path]:
    """Write ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` under ``out_root/ledger/pb``."""
    (out_root / "ledger" / "pb").mkdir(parents=True, exist_ok=True)
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    files = [str(path.relative_to(PROTO_ROOT)) for path in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return sorted((out_root / "ledger" / "pb").glob("*_pb2*.py*"))


def main() -> None:
    written = generate(REPO_ROOT)
    for path in written:
        print(path.relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
