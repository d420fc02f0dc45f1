"""Encrypted backup archives (AES-256-GCM) and the backup key.

Archive format (``*.mab``), designed to be streamed and re-implemented in PHP with
``openssl_decrypt('aes-256-gcm')``:

    header   = b"MOLAMBK1" || file_id (8 random bytes)                       16 bytes
    chunk[i] = nonce (12 random bytes) || length (u32 BE) || ciphertext || tag (16 bytes)

``length`` counts ciphertext plus tag. Each chunk holds at most 1 MiB of plaintext and is
authenticated with AAD = header || i (u64 BE) || last (1 byte: 1 on the final chunk, else 0),
so chunks cannot be reordered, dropped, or the archive truncated without detection. The
plaintext is an uncompressed POSIX tar stream (layout in ``docs/agent.md``).
"""

from __future__ import annotations

import base64
import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

from .errors import AgentError
from .fsutil import atomic_write_bytes

MAGIC = b"MOLAMBK1"
CHUNK = 1 << 20
HEADER_LEN = 16


class BackupKeyError(AgentError):
    """The backup key is missing, unreadable or has the wrong size."""


def load_or_create_key(path: Path, b64: str | None = None, create: bool = True) -> bytes:
    """Return the 32-byte backup key, creating the key file (mode 0600) when allowed."""
    if b64:
        return base64.b64decode(b64)
    path = Path(path)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise BackupKeyError(f"backup key {path} does not exist") from None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = os.urandom(32)
        # O_EXCL through atomic rename would race two agents; the state lock serialises us.
        atomic_write_bytes(path, key, mode=0o600)
        return key
    if len(key) != 32:
        raise BackupKeyError(f"backup key {path} must hold exactly 32 bytes, it holds {len(key)}")
    return key


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if last else 0)


class EncryptingWriter(io.RawIOBase):
    """A write-only file object that encrypts everything written to it into ``out``."""

    def __init__(self, out: BinaryIO, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aes = AESGCM(key)
        self._out = out
        self._header = MAGIC + os.urandom(8)
        self._buf = bytearray()
        self._index = 0
        self._out.write(self._header)
        self.bytes_in = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._buf += data
        self.bytes_in += len(data)
        # Keep one full chunk back: the final chunk must carry last=1, and we only know
        # which chunk is last at close().
        while len(self._buf) > CHUNK:
            self._emit(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(data)

    def _emit(self, plain: bytes, last: bool) -> None:
        nonce = os.urandom(12)
        sealed = self._aes.encrypt(nonce, plain, _aad(self._header, self._index, last))
        self._out.write(nonce + struct.pack(">I", len(sealed)) + sealed)
        self._index += 1

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self._buf), last=True)
            self._buf.clear()
        super().close()


def decrypt_stream(src: BinaryIO, key: bytes):
    """Yield the plaintext chunks of an archive; raise on any tampering or truncation."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(key)
    header = src.read(HEADER_LEN)
    if len(header) != HEADER_LEN or not header.startswith(MAGIC):
        raise AgentError("not a molam-agent backup archive")
    index = 0
    pending: tuple[bytes, bytes] | None = None
    while True:
        head = src.read(16)
        if not head:
            break
        if len(head) != 16:
            raise AgentError("backup archive is truncated")
        nonce, (length,) = head[:12], struct.unpack(">I", head[12:])
        sealed = src.read(length)
        if len(sealed) != length:
            raise AgentError("backup archive is truncated")
        if pending is not None:
            yield _open(aes, header, index - 1, pending, last=False, invalid=InvalidTag)
        pending = (nonce, sealed)
        index += 1
    if pending is None:
        raise AgentError("backup archive is truncated")
    yield _open(aes, header, index - 1, pending, last=True, invalid=InvalidTag)


def _open(aes, header: bytes, index: int, chunk: tuple[bytes, bytes], last: bool, invalid) -> bytes:
    try:
        return aes.decrypt(chunk[0], chunk[1], _aad(header, index, last))
    except invalid as exc:
        raise AgentError("backup archive failed authentication (wrong key, tampered or truncated)") from exc


class DecryptingReader(io.RawIOBase):
    """A read-only file object over the plaintext of an archive (for ``tarfile`` mode r|)."""

    def __init__(self, src: BinaryIO, key: bytes) -> None:
        self._chunks = decrypt_stream(src, key)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
