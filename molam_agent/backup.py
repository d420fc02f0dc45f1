"""Retention backups: the plugin directory and its database rows in one encrypted archive.

The archive (see ``crypto.py`` for the encryption layer) holds an uncompressed tar stream::

    manifest.json          format, plugin, version, created_at, db section (below)
    db/<table>.jsonl       one JSON array per row, columns in manifest order
    db/options.jsonl       the plugin's option rows, when configured
    files/...              the plugin directory, paths relative to it

``manifest.json`` ``db``: ``{"engine": "mysql", "tables": [{"name", "ddl", "columns",
"rows"}], "options": {"table", "where", "columns", "rows"} | null}``. Values that JSON cannot
carry are tagged: ``{"$b64": "..."}`` for binary, ``{"$json": ...}`` for JSON columns;
decimals, dates and times are strings.

File names: ``<plugin>-<version>-<YYYYmmddTHHMMSSZ>-<id>.mab`` in ``<state_dir>/backups``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import faults
from .crypto import DecryptingReader, EncryptingWriter
from .db import Database, encode_value
from .errors import AgentError
from .fsutil import fsync_dir
from .progress import progress

_NAME_RE = re.compile(
    r"^(?P<plugin>.+)-(?P<version>[^-]+(?:-[^-]+)*)-(?P<stamp>\d{8}T\d{6}Z)-(?P<id>[0-9a-f]+)\.mab$"
)


@dataclass(frozen=True)
class ArchiveInfo:
    """One retention archive on disk."""

    path: Path
    plugin: str
    version: str
    created_at: dt.datetime
    size: int


def archive_name(plugin: str, version: str, ident: str, now: dt.datetime | None = None) -> str:
    """The file name of a new archive."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{plugin}-{version}-{now.strftime('%Y%m%dT%H%M%SZ')}-{ident}.mab"


def list_archives(backup_dir: Path) -> list[ArchiveInfo]:
    """Archives in ``backup_dir``, newest first."""
    found = []
    for path in Path(backup_dir).glob("*.mab"):
        match = _NAME_RE.match(path.name)
        if not match:
            continue
        stamp = dt.datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        found.append(ArchiveInfo(path, match["plugin"], match["version"], stamp, path.stat().st_size))
    return sorted(found, key=lambda a: a.created_at, reverse=True)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def create_archive(
    dest: Path,
    key: bytes,
    plugin: str,
    version: str,
    plugin_dir: Path,
    db: Database | None,
    tables: list[str],
    options: Any,
) -> tuple[int, str]:
    """Write an encrypted archive atomically; return (size in bytes, sha256 of the file)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = dest.with_name(f".{dest.name}.part")
    manifest: dict[str, Any] = {
        "format": 1,
        "plugin": plugin,
        "version": version,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "db": None,
    }
    # A recognisable name: a run killed here leaves plaintext rows, which recovery removes.
    with tempfile.TemporaryDirectory(prefix=SPOOL_PREFIX, dir=dest.parent) as spool:
        dumps: list[tuple[str, Path]] = []
        if db is not None:
            present = db.tables()
            section: dict[str, Any] = {"engine": db.engine, "tables": [], "options": None}
            for table in tables:
                if table not in present:
                    continue
                path = Path(spool) / f"{table}.jsonl"
                rows = _dump_rows(db, f"SELECT * FROM {db.q(table)}", path)
                section["tables"].append(
                    {"name": table, "ddl": db.table_ddl(table), "columns": db.columns(table), "rows": rows}
                )
                dumps.append((f"db/{table}.jsonl", path))
            if options is not None and options.table in present:
                path = Path(spool) / "options.jsonl"
                rows = _dump_rows(db, f"SELECT * FROM {db.q(options.table)} WHERE ({options.where})", path)
                section["options"] = {
                    "table": options.table,
                    "where": options.where,
                    "columns": db.columns(options.table),
                    "rows": rows,
                }
                dumps.append(("db/options.jsonl", path))
            manifest["db"] = section
        with open(tmp, "wb") as raw:
            writer = EncryptingWriter(raw, key)
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
                for arcname, path in dumps:
                    tar.add(path, arcname=arcname)
                faults.point("backup:db-written")
                meter = progress("backup files", unit="files")
                tar.add(plugin_dir, arcname="files", recursive=True, filter=meter.tar_filter)
                meter.finish()
            writer.close()
            raw.flush()
            os.fsync(raw.fileno())
    digest = hashlib.sha256()
    with open(tmp, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return dest.stat().st_size, digest.hexdigest()


SPOOL_PREFIX = ".spool-"


def remove_plaintext(backup_dir: Path, work_dir: Path, keep: dict[str, Any] | None = None) -> list[str]:
    """Delete plaintext temporaries a killed run left: backup spools (``*.jsonl`` dumps of
    orders and options), partial archives, and restore scratch directories not in use."""
    removed: list[str] = []
    in_use = {str(v) for v in (keep or {}).values()}
    candidates: list[Path] = []
    if Path(backup_dir).is_dir():
        candidates += [p for p in Path(backup_dir).iterdir() if p.name.startswith(SPOOL_PREFIX)]
    if Path(work_dir).is_dir():
        candidates += [p for p in Path(work_dir).iterdir() if p.name.startswith("restore-")]
    for path in candidates:
        if str(path) in in_use:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


def _dump_rows(db: Database, sql: str, path: Path) -> int:
    count = 0
    cur = db.conn.cursor()
    try:
        cur.execute(sql)
        meter = progress(f"backup {path.stem}", unit="rows")
        with open(path, "w") as out:
            while rows := cur.fetchmany(2000):
                meter.advance(len(rows))
                for row in rows:
                    out.write(json.dumps([encode_value(v) for v in row], separators=(",", ":")))
                    out.write("\n")
                    count += 1
    finally:
        cur.close()
    meter.finish()
    return count


def restore_archive(archive: Path, key: bytes, files_dest: Path, db_dest: Path) -> dict[str, Any]:
    """Decrypt an archive: the plugin tree into ``files_dest``, table rows into ``db_dest``.

    Returns the manifest. Tar members are checked like release zips: nothing outside the
    destination, no device files, no links leaving the tree (``tarfile``'s ``data`` filter).
    """
    manifest: dict[str, Any] | None = None
    files_dest.mkdir(mode=0o755)
    db_dest.mkdir(mode=0o700, exist_ok=True)
    with open(archive, "rb") as raw:
        reader = io.BufferedReader(DecryptingReader(raw, key), buffer_size=1 << 20)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                if member.name == "manifest.json":
                    fh = tar.extractfile(member)
                    assert fh is not None
                    manifest = json.loads(fh.read())
                elif member.name.startswith("db/") and member.isfile():
                    fh = tar.extractfile(member)
                    assert fh is not None
                    target = db_dest / Path(member.name).name
                    with open(target, "wb") as out:
                        while chunk := fh.read(1 << 20):
                            out.write(chunk)
                elif member.name == "files" and member.isdir():
                    continue
                elif member.name.startswith("files/"):
                    member.name = member.name[len("files/") :]
                    tar.extract(member, files_dest, filter="data")
    if manifest is None:
        raise AgentError(f"backup archive {archive} has no manifest")
    return manifest


def read_rows(path: Path):
    """Rows of a ``db/*.jsonl`` dump."""
    with open(path) as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
