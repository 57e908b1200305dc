"""The power-loss filesystem on a real mount: what is fsync'd survives, nothing else does.

Each test mounts a fresh ``LazyFS`` (tests/powerloss/lazyfs.py) in a temporary directory, writes
through the mount, "loses power" (SIGKILL of the daemon, lazy unmount, a fresh daemon on the same
backing dir) and looks at what is left. Skips, with the reason, where FUSE cannot be mounted.
"""

from __future__ import annotations

import mmap
import os
import pathlib
from collections.abc import Iterator

import pytest

from powerloss.lazyfs import PAGE, LazyFS, fuse_unavailable_reason


@pytest.fixture
def fs(tmp_path: pathlib.Path) -> Iterator[LazyFS]:
    reason = fuse_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    lazy = LazyFS(tmp_path / "backing", tmp_path / "mnt")
    lazy.start()
    try:
        yield lazy
    except BaseException:
        print(f"--- lazyfs log ---\n{lazy.tail_log()}")
        raise
    finally:
        lazy.stop()


def power_cycle(fs: LazyFS) -> None:
    fs.power_loss()
    fs.start()


def write(
    path: pathlib.Path,
    data: bytes,
    offset: int = 0,
    sync: bool = False,
    flags: int = os.O_WRONLY | os.O_CREAT,
) -> None:
    fd = os.open(path, flags, 0o644)
    try:
        os.pwrite(fd, data, offset)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_unsynced_write_is_lost(fs: LazyFS) -> None:
    path = fs.mountpoint / "file"
    write(path, b"never synced")
    assert path.read_bytes() == b"never synced"  # readers see pending data
    assert not (fs.backing / "file").read_bytes()  # the backing file has none of it
    power_cycle(fs)
    assert path.exists()  # names pass through (see the module docstring of lazyfs)
    assert path.read_bytes() == b""


def test_fsynced_write_survives(fs: LazyFS) -> None:
    path = fs.mountpoint / "file"
    write(path, b"synced", sync=True)
    power_cycle(fs)
    assert path.read_bytes() == b"synced"


def test_fdatasync_is_a_durability_point_too(fs: LazyFS) -> None:
    path = fs.mountpoint / "file"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"data")
    os.fdatasync(fd)
    os.close(fd)
    power_cycle(fs)
    assert path.read_bytes() == b"data"


def test_writes_after_the_last_fsync_are_lost(fs: LazyFS) -> None:
    path = fs.mountpoint / "file"
    synced = bytes(range(256)) * 40  # 10 KiB: spans pages
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    os.write(fd, synced)
    os.fsync(fd)
    os.write(fd, b"appended, lost")
    os.pwrite(fd, b"X" * 5000, 3000)  # overwrites synced data across a page boundary
    expected_now = bytearray(synced + b"appended, lost")
    expected_now[3000:8000] = b"X" * 5000
    assert os.pread(fd, 20_000, 0) == bytes(expected_now)
    os.close(fd)
    power_cycle(fs)
    assert path.read_bytes() == synced


def test_shared_mmap_write_survives_with_flush_only(fs: LazyFS) -> None:
    flushed, unflushed = fs.mountpoint / "flushed", fs.mountpoint / "unflushed"
    for path in (flushed, unflushed):
        write(path, bytes(3 * PAGE), sync=True)
    for path, flush in ((flushed, True), (unflushed, False)):
        with open(path, "r+b") as handle:
            mapping = mmap.mmap(handle.fileno(), 0)  # MAP_SHARED, read and write
            mapping[PAGE - 3 : PAGE + 3] = b"mapped"
            if flush:
                mapping.flush()  # msync(MS_SYNC): dirty pages written, then FUSE fsync
            mapping.close()
        assert path.read_bytes()[PAGE - 3 : PAGE + 3] == b"mapped"  # written back on close
    power_cycle(fs)
    assert flushed.read_bytes()[PAGE - 3 : PAGE + 3] == b"mapped"
    assert unflushed.read_bytes() == bytes(3 * PAGE)


def test_rename_after_fsync_keeps_data(fs: LazyFS) -> None:
    synced, unsynced = fs.mountpoint / "synced.tmp", fs.mountpoint / "unsynced.tmp"
    write(synced, b"synced then renamed", sync=True)
    write(unsynced, b"renamed without fsync")
    synced.rename(fs.mountpoint / "synced")
    unsynced.rename(fs.mountpoint / "unsynced")
    assert (fs.mountpoint / "unsynced").read_bytes() == b"renamed without fsync"
    power_cycle(fs)
    assert (fs.mountpoint / "synced").read_bytes() == b"synced then renamed"
    assert (fs.mountpoint / "unsynced").read_bytes() == b""  # like a real fs without fsync
    assert sorted(os.listdir(fs.mountpoint)) == ["synced", "unsynced"]


def test_pending_data_follows_a_rename_and_replaces_the_target(fs: LazyFS) -> None:
    target = fs.mountpoint / "CURRENT"
    write(target, b"old, synced", sync=True)
    temporary = fs.mountpoint / "CURRENT.tmp"
    write(temporary, b"new")
    temporary.rename(target)
    assert target.read_bytes() == b"new"
    fsync(target)  # syncs the renamed inode's pending data under its new name
    power_cycle(fs)
    assert target.read_bytes() == b"new"


def test_unlink_drops_pending_data(fs: LazyFS) -> None:
    path = fs.mountpoint / "file"
    write(path, b"pending")
    path.unlink()
    write(path, b"other", offset=10)  # a new file under the same name, maybe the same inode
    assert path.read_bytes() == bytes(10) + b"other"
    fsync(path)
    power_cycle(fs)
    assert path.read_bytes() == bytes(10) + b"other"


def test_truncate_is_pending_until_fsync(fs: LazyFS) -> None:
    kept, cut = fs.mountpoint / "kept", fs.mountpoint / "cut"
    for path in (kept, cut):
        write(path, b"0123456789" * 1000, sync=True)
        os.truncate(path, 15)
        write(path, b"ab", offset=20)  # regrows: the hole must read as zeros, not old bytes
        assert path.read_bytes() == b"012345678901234" + bytes(5) + b"ab"
    fsync(cut)
    power_cycle(fs)
    assert kept.read_bytes() == b"0123456789" * 1000
    assert cut.read_bytes() == b"012345678901234" + bytes(5) + b"ab"


def test_open_with_o_trunc_and_ftruncate_are_pending(fs: LazyFS) -> None:
    path = fs.mountpoint / "file"
    write(path, b"synced content", sync=True)
    write(path, b"new", flags=os.O_WRONLY | os.O_TRUNC)
    assert path.read_bytes() == b"new"
    fd = os.open(path, os.O_RDWR)
    os.ftruncate(fd, 2 * PAGE + 1)
    assert os.fstat(fd).st_size == 2 * PAGE + 1
    os.close(fd)
    power_cycle(fs)
    assert path.read_bytes() == b"synced content"


def test_sparse_writes(fs: LazyFS) -> None:
    path = fs.mountpoint / "sparse"
    write(path, b"head")
    write(path, b"tail", offset=1 << 20)
    assert path.stat().st_size == (1 << 20) + 4
    data = path.read_bytes()
    assert data[:4] == b"head" and data[4 : 1 << 20] == bytes((1 << 20) - 4)
    fsync(path)
    power_cycle(fs)
    assert path.read_bytes() == data


def test_clean_stop_writes_pending_data_back(fs: LazyFS) -> None:
    path = fs.mountpoint / "file"
    write(path, b"written back at unmount")
    fs.stop()
    fs.start()
    assert path.read_bytes() == b"written back at unmount"
