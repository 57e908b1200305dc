"""A FUSE filesystem that forgets everything not fsync'd when its process dies ("power loss").

In the spirit of LazyFS: a passthrough filesystem over a backing directory that keeps every
file's written data in its own memory until the file is fsync'd. Only at ``fsync``/``fdatasync``
(and ``msync(MS_SYNC)`` of a shared mapping, which the kernel turns into a FUSE fsync after
writing the dirty pages back) does the file's pending data (its writes and truncations) go to the
backing file, which is then fsync'd there. Reads see the pending data over the backing file.

"Power loss" is a SIGKILL of this process: its memory, the data never fsync'd, is gone. Then the
dead mount is detached (lazy unmount) and a fresh process serves the same backing directory on the
same mount point; the kernel's page cache belonged to the old connection and goes with it.

Simplification: metadata operations (create, mkdir, unlink, rename, link, chmod, chown, utimens,
...) pass straight through to the backing directory, so they are durable at once, with or without
an fsync of the file or its directory. This makes the test weaker, not wrong: what a real
filesystem may lose is only a subset of what this one keeps, for metadata; for file data this one
loses everything a real one may lose. A file created or renamed whose data was not fsync'd comes
back empty (or with its older, synced data) after the power loss, exactly as on a real filesystem
without fsync.

Run as ``python tests/powerloss/lazyfs.py BACKING_DIR MOUNTPOINT`` (foreground, as root), or use
``LazyFS`` from a test. Uses ``fusepy`` (libfuse 2 through ctypes), multithreaded, with kernel page
caching (no direct_io: shared writable mmap works).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import errno
import functools
import importlib.util
import os
import pathlib
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Self

__all__ = ["LazyFS", "fuse_unavailable_reason"]

PAGE = 4096
READY_LINE = "lazyfs: serving"
start_timeout_s = 20.0
stop_timeout_s = 10.0


# -- the filesystem (runs in the daemon process) ----------------------------------------------


class PendingFile:
    """What one backing inode looks like to readers, before its next fsync.

    Visible byte at offset ``o < size``: the pending page holding it if there is one, else the
    backing file's byte if ``o < floor`` (and the backing file is that long), else zero. ``floor``
    is the lowest size the file was truncated to since the last sync: backing bytes from there on
    are gone for readers. Invariants: ``floor <= size``; every byte of a pending page at or past
    ``size`` is zero (pages are materialized from the visible content, truncation zeroes tails).
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd  # O_RDWR on the backing inode, owned (keeps the inode alive)
        self.size = size
        self.floor = size
        self.pages: dict[int, bytearray] = {}

    def _backing(self, offset: int, length: int) -> bytes:
        """Visible backing bytes in [offset, offset + length), zero-filled to ``length``."""
        end = min(offset + length, self.floor)
        data = os.pread(self.fd, end - offset, offset) if end > offset else b""
        return data + bytes(length - len(data))

    def _page(self, number: int) -> bytearray:
        page = self.pages.get(number)
        if page is None:
            page = bytearray(self._backing(number * PAGE, PAGE))
            self.pages[number] = page
        return page

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if end <= offset:
            return b""
        parts = []
        position = offset
        while position < end:
            number, start = divmod(position, PAGE)
            take = min(PAGE - start, end - position)
            page = self.pages.get(number)
            if page is None:
                parts.append(self._backing(position, take))
            else:
                parts.append(bytes(page[start : start + take]))
            position += take
        return b"".join(parts)

    def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        position = offset
        done = 0
        while done < len(data):
            number, start = divmod(position, PAGE)
            take = min(PAGE - start, len(data) - done)
            self._page(number)[start : start + take] = view[done : done + take]
            position += take
            done += take
        self.size = max(self.size, offset + len(data))

    def truncate(self, length: int) -> None:
        if length < self.size:
            last = (length + PAGE - 1) // PAGE  # pages from here on are wholly past the end
            for number in [n for n in self.pages if n >= last]:
                del self.pages[number]
            number, start = divmod(length, PAGE)
            if start and number in self.pages:
                page = self.pages[number]
                page[start:] = bytes(PAGE - start)
            self.floor = min(self.floor, length)
        self.size = length

    def write_back(self) -> None:
        """Put the pending state into the backing file (not yet fsync'd) and forget it."""
        if os.fstat(self.fd).st_size > self.floor:
            os.ftruncate(self.fd, self.floor)
        for number in sorted(self.pages):
            end = min(PAGE, self.size - number * PAGE)
            if end > 0:
                os.pwrite(self.fd, self.pages[number][:end], number * PAGE)
        if os.fstat(self.fd).st_size != self.size:
            os.ftruncate(self.fd, self.size)
        self.pages.clear()
        self.floor = self.size


def _errors_as_fuse(method):  # type: ignore[no-untyped-def]
    """OSError from the backing dir -> the same errno to the kernel."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        from fuse import FuseOSError  # type: ignore[import-untyped]

        try:
            return method(*args, **kwargs)
        except FuseOSError:
            raise
        except OSError as error:
            raise FuseOSError(error.errno or errno.EIO) from None

    return wrapper


class LazyOperations:
    """fusepy operations (``raw_fi=True``: file handles arrive as ``fuse_file_info``)."""

    use_ns = True

    def __init__(self, backing: str) -> None:
        self.backing = os.path.realpath(backing)
        self._mutex = threading.Lock()
        self.handles: dict[int, tuple[int, tuple[int, int]]] = {}  # fh -> (backing fd, key)
        self.open_count: dict[tuple[int, int], int] = {}
        self.pending: dict[tuple[int, int], PendingFile] = {}  # (st_dev, st_ino) -> state

    def __call__(self, op: str, *args: Any) -> Any:
        from fuse import FuseOSError  # type: ignore[import-untyped]

        method = getattr(self, op, None)
        if method is None:
            raise FuseOSError(errno.ENOSYS)
        return method(*args)

    # helpers

    def _path(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int]:
        return (st.st_dev, st.st_ino)

    def _state(self, fd: int, key: tuple[int, int]) -> PendingFile:
        state = self.pending.get(key)
        if state is None:
            writable = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
            state = PendingFile(writable, os.fstat(writable).st_size)
            self.pending[key] = state
        return state

    def _drop(self, key: tuple[int, int]) -> None:
        state = self.pending.pop(key, None)
        if state is not None:
            os.close(state.fd)

    def _forget_if_gone(self, st: os.stat_result | None) -> None:
        """After unlink/rename-over: drop the pending data of an inode that has no name left and
        no open handle (one with open handles is dropped at its last release)."""
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            return
        key = self._key(st)
        if not self.open_count.get(key):
            self._drop(key)

    def _lstat_or_none(self, path: str) -> os.stat_result | None:
        try:
            return os.lstat(path)
        except FileNotFoundError:
            return None

    def _open(self, path: str, fi: Any, fd: int) -> int:
        key = self._key(os.fstat(fd))
        self.handles[fd] = (fd, key)
        self.open_count[key] = self.open_count.get(key, 0) + 1
        if fi.flags & os.O_TRUNC:
            self._state(fd, key).truncate(0)
        fi.fh = fd
        fi.direct_io = 0
        fi.keep_cache = 0
        return 0

    # lifecycle

    def init(self, path: str) -> None:
        print(f"{READY_LINE} {self.backing}", flush=True)

    def destroy(self, path: str) -> None:
        """A clean unmount writes everything back, like a real filesystem's umount."""
        with self._mutex:
            for key in list(self.pending):
                state = self.pending[key]
                with contextlib.suppress(OSError):
                    state.write_back()
                    os.fsync(state.fd)
                self._drop(key)

    # files

    @_errors_as_fuse
    def create(self, path: str, mode: int, fi: Any) -> int:
        with self._mutex:
            flags = os.O_CREAT | os.O_RDONLY | os.O_CLOEXEC | (fi.flags & os.O_EXCL)
            return self._open(path, fi, os.open(self._path(path), flags, mode))

    @_errors_as_fuse
    def open(self, path: str, fi: Any) -> int:
        with self._mutex:
            return self._open(path, fi, os.open(self._path(path), os.O_RDONLY | os.O_CLOEXEC))

    @_errors_as_fuse
    def read(self, path: str | None, size: int, offset: int, fi: Any) -> bytes:
        with self._mutex:
            fd, key = self.handles[fi.fh]
            state = self.pending.get(key)
            if state is None:
                return os.pread(fd, size, offset)
            return state.read(offset, size)

    @_errors_as_fuse
    def write(self, path: str | None, data: bytes, offset: int, fi: Any) -> int:
        with self._mutex:
            fd, key = self.handles[fi.fh]
            self._state(fd, key).write(offset, data)
            return len(data)

    @_errors_as_fuse
    def truncate(self, path: str | None, length: int, fi: Any = None) -> int:
        with self._mutex:
            if fi:
                fd, key = self.handles[fi.fh]
                self._state(fd, key).truncate(length)
                return 0
            assert path is not None
            fd = os.open(self._path(path), os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._state(fd, self._key(os.fstat(fd))).truncate(length)
            finally:
                os.close(fd)
            return 0

    @_errors_as_fuse
    def fsync(self, path: str | None, datasync: int, fi: Any) -> int:
        with self._mutex:
            _, key = self.handles[fi.fh]
            state = self.pending.get(key)
            if state is None:
                return 0
            state.write_back()
            fd = os.dup(state.fd)
        try:
            os.fsync(fd)  # outside the lock: other files go on meanwhile
        finally:
            os.close(fd)
        return 0

    def flush(self, path: str | None, fi: Any) -> int:
        return 0  # close() is no durability point

    @_errors_as_fuse
    def release(self, path: str | None, fi: Any) -> int:
        with self._mutex:
            fd, key = self.handles.pop(fi.fh)
            self.open_count[key] -= 1
            if not self.open_count[key]:
                del self.open_count[key]
                if os.fstat(fd).st_nlink == 0:
                    self._drop(key)  # unlinked while open: its data goes with it
            os.close(fd)
            return 0

    @_errors_as_fuse
    def getattr(self, path: str | None, fi: Any = None) -> dict[str, int]:
        with self._mutex:
            if fi:
                st = os.fstat(self.handles[fi.fh][0])
            else:
                assert path is not None
                st = os.lstat(self._path(path))
            size = st.st_size
            state = self.pending.get(self._key(st)) if stat.S_ISREG(st.st_mode) else None
            if state is not None:
                size = state.size
            return {
                "st_mode": st.st_mode,
                "st_nlink": st.st_nlink,
                "st_uid": st.st_uid,
                "st_gid": st.st_gid,
                "st_size": size,
                "st_blocks": (size + 511) // 512,
                "st_blksize": PAGE,
                "st_atime": st.st_atime_ns,
                "st_mtime": st.st_mtime_ns,
                "st_ctime": st.st_ctime_ns,
                "st_rdev": st.st_rdev,
            }

    # names and metadata: straight to the backing dir

    @_errors_as_fuse
    def unlink(self, path: str) -> int:
        with self._mutex:
            target = self._path(path)
            before = os.lstat(target)
            os.unlink(target)
            self._forget_if_gone(before)
            return 0

    @_errors_as_fuse
    def rename(self, old: str, new: str) -> int:
        with self._mutex:
            source, target = self._path(old), self._path(new)
            moved = os.lstat(source)
            replaced = self._lstat_or_none(target)
            os.rename(source, target)  # the inode, and so its pending data, keeps going
            if replaced is not None and self._key(replaced) != self._key(moved):
                self._forget_if_gone(replaced)
            return 0

    @_errors_as_fuse
    def link(self, target: str, source: str) -> int:
        os.link(self._path(source), self._path(target))
        return 0

    @_errors_as_fuse
    def symlink(self, target: str, source: str) -> int:
        os.symlink(source, self._path(target))
        return 0

    @_errors_as_fuse
    def readlink(self, path: str) -> str:
        return os.readlink(self._path(path))

    @_errors_as_fuse
    def mknod(self, path: str, mode: int, dev: int) -> int:
        os.mknod(self._path(path), mode, dev)
        return 0

    @_errors_as_fuse
    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._path(path), mode)
        return 0

    @_errors_as_fuse
    def rmdir(self, path: str) -> int:
        os.rmdir(self._path(path))
        return 0

    @_errors_as_fuse
    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._path(path), mode)
        return 0

    @_errors_as_fuse
    def chown(self, path: str, uid: int, gid: int) -> int:
        os.lchown(self._path(path), uid, gid)
        return 0

    @_errors_as_fuse
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        if times is None:
            os.utime(self._path(path), follow_symlinks=False)
        else:
            os.utime(self._path(path), ns=times, follow_symlinks=False)
        return 0

    @_errors_as_fuse
    def access(self, path: str, amode: int) -> int:
        from fuse import FuseOSError  # type: ignore[import-untyped]

        if not os.access(self._path(path), amode):
            raise FuseOSError(errno.EACCES)
        return 0

    def opendir(self, path: str) -> int:
        return 0

    @_errors_as_fuse
    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def releasedir(self, path: str | None, fh: int) -> int:
        return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        return 0  # names are already in the backing dir (see the module docstring)

    @_errors_as_fuse
    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._path(path))
        return {
            key: getattr(st, key)
            for key in (
                "f_bavail",
                "f_bfree",
                "f_blocks",
                "f_bsize",
                "f_favail",
                "f_ffree",
                "f_files",
                "f_flag",
                "f_frsize",
                "f_namemax",
            )
        }


def _exit_with_parent(parent: int, mountpoint: str) -> None:
    """If the process that started us dies (a killed test run), detach the mount and die too,
    so no daemon or mount outlives it. Unsynced data is lost, as in any crash."""
    while os.getppid() == parent:
        time.sleep(1.0)
    with contextlib.suppress(OSError):
        _lazy_unmount(pathlib.Path(mountpoint))
    os._exit(1)


def serve(backing: str, mountpoint: str, debug: bool = False, parent: int | None = None) -> None:
    """Mount and serve in the foreground until unmounted or killed."""
    from fuse import FUSE  # type: ignore[import-untyped]

    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent, mountpoint), daemon=True).start()
    FUSE(
        LazyOperations(backing),
        mountpoint,
        raw_fi=True,
        foreground=True,
        debug=debug,
        fsname="lazyfs",
        subtype="lazyfs",
        big_writes=True,
        max_write=128 * 1024,
        hard_remove=True,  # unlink of an open file: really unlinked, no .fuse_hidden files
        atomic_o_trunc=True,  # O_TRUNC arrives with open, as a pending truncation
    )


# -- the test-side API ------------------------------------------------------------------------


def _mounted(mountpoint: pathlib.Path) -> bool:
    """Whether a lazyfs mount sits on ``mountpoint`` (read from mountinfo, never stat'ing it)."""
    target = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            separator = fields.index("-")
            point = fields[4].replace("\\040", " ")
            if point == target and fields[separator + 1].startswith("fuse"):
                return True
    return False


def _lazy_unmount(mountpoint: pathlib.Path) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    mnt_detach = 2
    if libc.umount2(os.fsencode(os.path.realpath(mountpoint)), mnt_detach) != 0:
        error = ctypes.get_errno()
        if error not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point (any more)
            raise OSError(error, f"umount2({mountpoint}, MNT_DETACH): {os.strerror(error)}")


class LazyFS:
    """A lazyfs daemon serving ``backing`` on ``mountpoint``; its output goes to ``log_path``.

    ``start()`` mounts (and waits until served), ``power_loss()`` SIGKILLs the daemon and detaches
    the dead mount (everything not fsync'd is gone), ``start()`` again serves the same backing
    dir; ``stop()`` is a clean unmount (pending data written back, like a real umount).
    """

    def __init__(
        self, backing: pathlib.Path, mountpoint: pathlib.Path, log_path: pathlib.Path | None = None
    ) -> None:
        self.backing = pathlib.Path(backing)
        self.mountpoint = pathlib.Path(mountpoint)
        self.log_path = log_path or self.backing.parent / f"lazyfs-{self.mountpoint.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        assert not self.alive(), "lazyfs already running"
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if _mounted(self.mountpoint):  # left over by a killed run
            _lazy_unmount(self.mountpoint)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    str(self.backing),
                    str(self.mountpoint),
                    "--parent",
                    str(os.getpid()),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                start_new_session=True,
            )
        deadline = time.monotonic() + start_timeout_s
        while True:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                ready = READY_LINE.encode() in handle.read()
            if ready and _mounted(self.mountpoint):
                return
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"lazyfs exited with status {self.process.returncode}:\n{self.tail_log(offset)}"
                )
            if time.monotonic() > deadline:
                self.power_loss()
                raise TimeoutError(
                    f"lazyfs did not mount within {start_timeout_s} s:\n{self.tail_log(offset)}"
                )
            time.sleep(0.02)

    def power_loss(self) -> None:
        """SIGKILL the daemon (its unsynced data dies with it) and detach the dead mount."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(stop_timeout_s)
        _lazy_unmount(self.mountpoint)

    def stop(self) -> None:
        """Clean unmount: SIGTERM, the daemon writes back pending data and unmounts."""
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(stop_timeout_s)
        _lazy_unmount(self.mountpoint)

    def tail_log(self, offset: int = 0, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@functools.cache
def fuse_unavailable_reason() -> str | None:
    """None if a lazyfs can be mounted here, else why not (with the exact error)."""
    if not sys.platform.startswith("linux"):
        return f"FUSE needs Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "lazyfs mounts FUSE directly and needs root (euid is not 0)"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as error:
        return f"cannot open /dev/fuse: {error}"
    if importlib.util.find_spec("fuse") is None:
        return "Python package fusepy is not installed (pip install -e '.[test]')"
    if ctypes.util.find_library("fuse") is None:
        return "libfuse 2 is not installed (Debian package libfuse2, tests/system_packages.sh)"
    with tempfile.TemporaryDirectory(prefix="lazyfs-probe-") as root:
        base = pathlib.Path(root)
        fs = LazyFS(base / "backing", base / "mnt", base / "lazyfs.log")
        try:
            fs.start()
            try:
                probe = fs.mountpoint / "probe"
                probe.write_bytes(b"probe")
                if probe.read_bytes() != b"probe":
                    return "lazyfs probe: read back differs from what was written"
            finally:
                fs.power_loss()
        except Exception as error:  # noqa: BLE001 - the reason is the point
            return f"lazyfs mount failed: {type(error).__name__}: {error}"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backing", help="directory holding the durable (fsync'd) data")
    parser.add_argument("mountpoint", help="empty directory to mount on")
    parser.add_argument("--debug", action="store_true", help="libfuse debug output")
    parser.add_argument(
        "--parent",
        type=int,
        metavar="PID",
        help="unmount and exit when this process is no longer our parent",
    )
    options = parser.parse_args(argv)
    serve(options.backing, options.mountpoint, options.debug, options.parent)


if __name__ == "__main__":
    main()
