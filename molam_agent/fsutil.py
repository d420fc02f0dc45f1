"""File-system primitives: durable writes, atomic directory exchange, tree walking."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

from . import faults

# linux/fs.h
RENAME_EXCHANGE = 1 << 1
AT_FDCWD = -100

_renameat2: Any = None
_renameat2_checked = False


def _load_renameat2() -> Any:
    """Find glibc's renameat2 once; None where it does not exist (not Linux, old libc)."""
    global _renameat2, _renameat2_checked
    if _renameat2_checked:
        return _renameat2
    _renameat2_checked = True
    if not sys.platform.startswith("linux") or os.environ.get("MOLAM_AGENT_NO_RENAMEAT2"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    _renameat2 = func
    return func


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` so that a crash leaves either the old or the new content, never a mix.

    Temp file in the same directory, fsync, rename over the target, fsync the directory.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, mode: int = 0o600) -> None:
    """``atomic_write_bytes`` for a JSON document (UTF-8, sorted keys, trailing newline)."""
    data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode() + b"\n"
    atomic_write_bytes(path, data, mode)


def read_json(path: Path) -> Any:
    """Read a JSON file written by ``atomic_write_json``; None when it does not exist."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def exchange(a: Path, b: Path) -> bool:
    """Swap two directory entries atomically. Returns False when the kernel cannot.

    ``renameat2(RENAME_EXCHANGE)`` swaps both names in one step: at every instant both
    paths exist and each holds one complete tree.
    """
    func = _load_renameat2()
    if func is None:
        return False
    rc = func(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        # File systems without exchange support (some FUSE, old NFS): caller falls back.
        return False
    raise OSError(err, os.strerror(err), str(a))


def swap_dirs(live: Path, incoming: Path, aside: Path) -> None:
    """Put ``incoming`` at ``live`` and move what was live to ``aside``.

    With RENAME_EXCHANGE there is no instant where ``live`` is missing. The fallback does two
    renames (live -> aside, incoming -> live); a crash between them leaves ``live`` missing for
    recovery to fix, which it recognises from the inode numbers kept in the journal.
    """
    if exchange(live, incoming):
        fsync_dir(live.parent)
        faults.point("swap:exchanged")
        os.rename(incoming, aside)
        fsync_dir(aside.parent)
        return
    os.rename(live, aside)
    fsync_dir(aside.parent)
    faults.point("swap:between-renames")
    os.rename(incoming, live)
    fsync_dir(live.parent)


def inode_of(path: Path) -> int | None:
    """Inode number of ``path`` without following a final symlink, None when missing."""
    try:
        return os.lstat(path).st_ino
    except FileNotFoundError:
        return None


def count_files(root: Path) -> int:
    """Number of non-directory entries below ``root``."""
    total = 0
    for _dirpath, _dirnames, filenames in os.walk(root):
        total += len(filenames)
    return total


def tree_size(root: Path) -> int:
    """Bytes in regular files below ``root``."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def tree_fingerprint(root: Path) -> str:
    """SHA-256 over every path, type, permission bits and content below ``root``.

    Two trees with the same fingerprint are byte-for-byte identical.
    """
    digest = hashlib.sha256()
    root = Path(root)
    entries: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            entries.append(os.path.relpath(os.path.join(dirpath, name), root))
    for rel in sorted(entries):
        full = root / rel
        st = os.lstat(full)
        digest.update(rel.encode() + b"\0" + oct(st.st_mode).encode() + b"\0")
        if stat.S_ISLNK(st.st_mode):
            digest.update(os.readlink(full).encode())
        elif stat.S_ISREG(st.st_mode):
            with open(full, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def remove_tree(path: Path) -> None:
    """Delete a directory tree if it exists (symlinks are removed, never followed)."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def sync_filesystem(path: Path) -> None:
    """Flush every dirty page of the file system holding ``path`` (Linux ``syncfs``).

    One syncfs after extracting thousands of files is far cheaper than an fsync per file,
    and gives the same guarantee before the directory swap.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()
