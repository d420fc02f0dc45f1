"""Release packages: download, SHA-256 and Ed25519 verification, safe zip extraction."""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import logging
import os
import stat
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import faults, transport
from .config import Config
from .errors import DownloadError, UnsafeArchiveError, VerificationError
from .progress import Progress, progress

log = logging.getLogger("molam_agent")

UNSIGNED_WARNING = (
    "RELEASE SIGNATURES ARE NOT CHECKED: release.allow_unsigned = true and no release.public_key; "
    "anyone who can change the control plane's answer or the download can run code on this host"
)

_MAX_ENTRIES = 100_000
# A deflated entry that expands more than this is treated as a zip bomb. Real plugin files
# (minified JS, PHP, translations) compress 3-20x; bombs compress 1000x and more.
_MAX_RATIO = 200


@dataclass(frozen=True)
class Release:
    """What the control plane says about the version to install."""

    version: str
    download_url: str
    sha256: str
    signature: str | None = None


def download(release: Release, dest: Path, max_bytes: int, timeout_s: float = 60.0) -> str:
    """Fetch the package to ``dest``, refusing more than ``max_bytes``; return its SHA-256.

    The URL must be https (http only for loopback hosts, ``file:`` for a local mirror), and
    redirects follow the same rule (``transport.SafeRedirectHandler``).
    """
    refusal = transport.url_refusal(release.download_url, allow_file=True)
    if refusal:
        raise VerificationError(f"release download URL refused: {refusal}")
    digest = hashlib.sha256()
    size = 0
    req = urllib.request.Request(release.download_url, headers={"User-Agent": "molam-agent"})
    try:
        with transport.urlopen(req, timeout=timeout_s) as resp, open(dest, "wb") as out:
            length = resp.headers.get("Content-Length") if resp.headers else None
            meter = progress("download", int(length) if length and length.isdigit() else None)
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise VerificationError(f"release package is larger than {max_bytes >> 20} MiB")
                digest.update(chunk)
                out.write(chunk)
                meter.advance(len(chunk))
                faults.point("download:chunk")
            out.flush()
            os.fsync(out.fileno())
            meter.finish()
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot download {release.download_url}: {exc.reason}") from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot download {release.download_url}: {exc}") from exc
    return digest.hexdigest()


def verify_checksum(actual: str, expected: str) -> None:
    """Refuse a package whose SHA-256 differs from the release's."""
    if not expected or actual.lower() != expected.strip().lower():
        raise VerificationError(f"checksum mismatch: expected sha256 {expected}, got {actual}")


def load_public_key(text: str):  # -> Ed25519PublicKey
    """An Ed25519 public key given as base64 of its 32 raw bytes, or as a PEM block."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise VerificationError("release.public_key is not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise VerificationError("release.public_key is not base64") from exc
    if len(raw) != 32:
        raise VerificationError("release.public_key must be 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_signature(package: Path, signature: str | None, public_key: str) -> None:
    """Check the Ed25519 signature (base64) over the package's raw bytes."""
    from cryptography.exceptions import InvalidSignature

    if not signature:
        raise VerificationError("release is not signed and release.public_key is set")
    key = load_public_key(public_key)
    try:
        sig = base64.b64decode(signature.strip(), validate=True)
    except binascii.Error as exc:
        raise VerificationError("release signature is not base64") from exc
    try:
        key.verify(sig, Path(package).read_bytes())
    except InvalidSignature as exc:
        raise VerificationError("release signature does not verify against release.public_key") from exc


def verify_release(package: Path, release: Release, cfg: Config) -> None:
    """Signature policy: required unless ``release.allow_unsigned`` (TUF: fail closed).

    With a ``public_key`` every release must carry a signature that verifies, whatever
    ``allow_unsigned`` says; without one, only an explicit ``allow_unsigned = true`` lets a
    package through, and that is logged at WARNING on every run.
    """
    if cfg.public_key:
        verify_signature(package, release.signature, cfg.public_key)
    elif cfg.allow_unsigned:
        log.warning(UNSIGNED_WARNING)
    else:
        raise VerificationError(
            "no release.public_key is configured: refusing an unverifiable release "
            "(set release.allow_unsigned = true to opt out)"
        )


def _clean_name(name: str) -> str:
    """Normalise a member name or refuse it (absolute, drive letter, '..', NUL)."""
    if "\0" in name or "\\" in name:
        raise UnsafeArchiveError(f"archive member {name!r} has a forbidden character")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeArchiveError(f"archive member {name!r} escapes the archive (path traversal)")
    return "/".join(parts)


def _kind(info: zipfile.ZipInfo) -> str:
    """``file``, ``dir``, ``symlink`` or ``special`` (FIFO, device...) from the Unix mode bits."""
    if info.is_dir():
        return "dir"
    mode = info.external_attr >> 16 if info.create_system == 3 else 0
    fmt = stat.S_IFMT(mode)
    if fmt == stat.S_IFLNK:
        return "symlink"
    if fmt in (0, stat.S_IFREG):
        return "file"
    if fmt == stat.S_IFDIR:
        return "dir"
    return "special"


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(root_fd: int, parts: list[str], rel: str) -> int:
    """Open (creating as needed) the directory ``parts`` below ``root_fd``, one level at a time.

    Every level is opened relative to the descriptor of its parent with ``O_NOFOLLOW``, so no
    symlink -- whatever put it there -- can redirect a write outside the staging directory:
    the kernel refuses to traverse it (``ELOOP``/``ENOTDIR``) instead of following it.
    """
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError as exc:
        os.close(fd)
        raise UnsafeArchiveError(
            f"archive member {rel!r} cannot be placed in the tree: {exc.strerror}"
        ) from exc
    return fd


def extract_zip(package: Path, dest: Path, max_unpacked: int) -> int:
    """Extract a release zip into ``dest`` (created, must not exist); return the file count.

    The files are either at the root of the zip or inside one top folder (WordPress style);
    the top folder is stripped. Refused: absolute paths, ``..`` components, symlinks and
    other special files (a plugin needs none, and a chain such as ``a -> .``,
    ``up -> a/a/a/../../..``, ``up/x.php`` defeats any textual check), duplicate names, more
    than ``max_unpacked`` bytes once expanded (counted while writing, the sizes in the headers
    are not trusted), suspicious compression ratios. Every write goes through directory
    descriptors opened with ``O_NOFOLLOW`` below the real ``dest`` (``_open_dir``).
    """
    try:
        zf = zipfile.ZipFile(package)
    except (zipfile.BadZipFile, OSError) as exc:
        raise VerificationError(f"release package is not a valid zip: {exc}") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > _MAX_ENTRIES:
            raise UnsafeArchiveError(f"archive has more than {_MAX_ENTRIES} entries")
        names = [(_clean_name(i.filename), i) for i in infos]
        names = [(n, i) for n, i in names if n]
        if not names:
            raise VerificationError("release package is empty")
        for name, info in names:
            kind = _kind(info)
            if kind == "symlink":
                raise UnsafeArchiveError(
                    f"archive member {name!r} is a symlink: release packages may not contain symlinks"
                )
            if kind == "special":
                raise UnsafeArchiveError(f"archive member {name!r} is not a regular file or directory")
        declared = sum(i.file_size for _, i in names)
        if declared > max_unpacked:
            raise UnsafeArchiveError(f"archive expands to {declared} bytes, over the {max_unpacked} limit")
        tops = {n.split("/", 1)[0] for n, _ in names}
        strip = ""
        if len(tops) == 1:
            top = next(iter(tops))
            # One top folder and no file at the root: WordPress-style package.
            if all(n != top or i.is_dir() for n, i in names):
                strip = top + "/"
        dest = Path(dest)
        dest.mkdir(mode=0o755)
        root_fd = os.open(dest, _DIR_FLAGS)
        meter = progress("extract", len(names), unit="files")
        try:
            return _extract_members(zf, names, strip, root_fd, max_unpacked, meter)
        finally:
            os.close(root_fd)


def _extract_members(
    zf: zipfile.ZipFile,
    names: list[tuple[str, zipfile.ZipInfo]],
    strip: str,
    root_fd: int,
    max_unpacked: int,
    meter: Progress,
) -> int:
    seen: set[str] = set()
    written = 0
    files = 0
    for name, info in names:
        meter.advance()
        rel = (
            name[len(strip) :] if strip and name.startswith(strip) else ("" if name + "/" == strip else name)
        )
        if not rel:
            continue
        if rel in seen:
            raise UnsafeArchiveError(f"archive member {rel!r} appears twice")
        seen.add(rel)
        parts = rel.split("/")
        if info.is_dir():
            os.close(_open_dir(root_fd, parts, rel))
            continue
        if (
            info.compress_size
            and info.file_size > (1 << 20)
            and info.file_size / info.compress_size > _MAX_RATIO
        ):
            raise UnsafeArchiveError(f"archive member {rel!r} has a zip-bomb compression ratio")
        mode = (info.external_attr >> 16) & 0o777 if info.create_system == 3 else 0
        mode = (mode or 0o644) & 0o755 | 0o600  # no setuid/sticky, never world-writable
        parent = _open_dir(root_fd, parts[:-1], rel)
        try:
            try:
                fd = os.open(parts[-1], _FILE_FLAGS, 0o600, dir_fd=parent)
            except OSError as exc:
                raise UnsafeArchiveError(f"archive member {rel!r} cannot be written: {exc.strerror}") from exc
            with zf.open(info) as src, os.fdopen(fd, "wb") as out:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > max_unpacked:
                        raise UnsafeArchiveError(f"archive expands beyond the {max_unpacked} byte limit")
                    out.write(chunk)
                os.fchmod(out.fileno(), mode)
        finally:
            os.close(parent)
        files += 1
    meter.finish()
    faults.point("extract:done")
    return files
