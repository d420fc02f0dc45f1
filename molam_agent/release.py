"""Release packages: download, SHA-256 and Ed25519 verification, safe zip extraction."""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import os
import posixpath
import stat
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import faults
from .errors import DownloadError, UnsafeArchiveError, VerificationError

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
    """Fetch the package to ``dest``, refusing more than ``max_bytes``; return its SHA-256."""
    digest = hashlib.sha256()
    size = 0
    req = urllib.request.Request(release.download_url, headers={"User-Agent": "molam-agent"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(dest, "wb") as out:
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise VerificationError(f"release package is larger than {max_bytes >> 20} MiB")
                digest.update(chunk)
                out.write(chunk)
                faults.point("download:chunk")
            out.flush()
            os.fsync(out.fileno())
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


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def extract_zip(package: Path, dest: Path, max_unpacked: int) -> int:
    """Extract a release zip into ``dest`` (created, must not exist); return the file count.

    The files are either at the root of the zip or inside one top folder (WordPress style);
    the top folder is stripped. Refused: absolute paths, ``..`` components, symlinks whose
    target leaves the tree, duplicate names, more than ``max_unpacked`` bytes once expanded
    (counted while writing, the sizes in the headers are not trusted), suspicious
    compression ratios.
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
        dest.mkdir(mode=0o755)
        seen: set[str] = set()
        written = 0
        files = 0
        for name, info in names:
            rel = (
                name[len(strip) :]
                if strip and name.startswith(strip)
                else ("" if name + "/" == strip else name)
            )
            if not rel:
                continue
            if rel in seen:
                raise UnsafeArchiveError(f"archive member {rel!r} appears twice")
            seen.add(rel)
            target = dest / rel
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if _is_symlink(info):
                link = zf.read(info).decode("utf-8", "replace")
                if link.startswith("/") or "\0" in link:
                    raise UnsafeArchiveError(f"symlink {rel!r} points to an absolute path")
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
                if resolved == ".." or resolved.startswith("../"):
                    raise UnsafeArchiveError(f"symlink {rel!r} points outside the plugin ({link})")
                os.symlink(link, target)
                files += 1
                continue
            if (
                info.compress_size
                and info.file_size > (1 << 20)
                and info.file_size / info.compress_size > _MAX_RATIO
            ):
                raise UnsafeArchiveError(f"archive member {rel!r} has a zip-bomb compression ratio")
            mode = (info.external_attr >> 16) & 0o777 if info.create_system == 3 else 0
            mode = (mode or 0o644) & 0o755 | 0o600  # no setuid/sticky, never world-writable
            with zf.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > max_unpacked:
                        raise UnsafeArchiveError(f"archive expands beyond the {max_unpacked} byte limit")
                    out.write(chunk)
            os.chmod(target, mode)
            files += 1
        faults.point("extract:done")
        return files
