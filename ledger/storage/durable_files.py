"""Small files replaced atomically and durably: the one way this project writes metadata.

A rename without an fsync of the file first can leave an empty file under the new name after a
power loss, and a rename is itself only durable once its directory is synced.
"""

from __future__ import annotations

import os
import pathlib

__all__ = ["fsync_directory", "write_durably"]


def fsync_directory(path: pathlib.Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_durably(path: str | pathlib.Path, data: bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically; durably (file and directory synced) unless
    ``sync`` is False (benchmarks only: atomic against a process crash, not a power loss)."""
    target = pathlib.Path(path)
    temporary = target.with_name(target.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())
    os.replace(temporary, target)
    if sync:
        fsync_directory(target.parent)
