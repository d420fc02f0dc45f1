"""Database access for backups, migrations and atomic table restores.

One small adapter per engine -- MySQL/MariaDB (PyMySQL, ``db_mysql.py``), PostgreSQL (psycopg 3,
``db_postgres.py``) and SQLite (stdlib, ``db_sqlite.py``) -- exposing the few operations the
agent needs; this module holds what they share. The important one is
``restore_snapshot``: every table of the plugin is put back in ONE atomic step (a single
``RENAME TABLE`` on MySQL/MariaDB, one transaction on PostgreSQL and SQLite), so a crash
can never leave half of the tables old and half new.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import hashlib
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .errors import ConfigError, MigrationError

MIGRATIONS_TABLE = "molam_agent_migrations"
# Ids kept free between the live table's AUTO_INCREMENT and a restored table's (MySQL/MariaDB).
AUTO_INCREMENT_MARGIN = 1000
# Characters the snapshot-mode change log holds per key (its ``pk`` column). A table whose
# encoded primary key could be longer is refused snapshot mode at staging: a key cut short
# (MariaDB, non-strict) would never be merged back, and one refused (PostgreSQL) would fail
# the shop's write.
CHANGE_LOG_KEY_CHARS = 255


def _lit(text: str) -> str:
    """A SQL string literal for an identifier-like value of ours."""
    if not re.match(r"^[A-Za-z0-9_$]*$", text):
        raise ValueError(f"unexpected name {text!r}")
    return "'" + text + "'"


def connect(url: str, lock_timeout_s: float | None = None) -> Database:
    """Open the database named by a ``mysql://``, ``postgresql://`` or ``sqlite://`` URL.

    With ``lock_timeout_s``, every lock the session waits for (row locks, and the metadata or
    ``ACCESS EXCLUSIVE`` locks DDL needs) gives up after that many seconds instead of the
    engine's default (a day on MariaDB, forever on PostgreSQL).
    """
    scheme = url.split("://", 1)[0].lower()
    # One module per engine (db_mysql, db_postgres, db_sqlite), each importing this one.
    if scheme in ("mysql", "mariadb"):
        from .db_mysql import MySQLDatabase

        db: Database = MySQLDatabase(url)
    elif scheme in ("postgres", "postgresql"):
        from .db_postgres import PostgresDatabase

        db = PostgresDatabase(url)
    elif scheme == "sqlite":
        from .db_sqlite import SQLiteDatabase

        db = SQLiteDatabase(url)
    else:
        raise ConfigError(f"unsupported database URL scheme {scheme!r}")
    if lock_timeout_s is not None:
        db.set_lock_timeout(lock_timeout_s)
    return db


def encode_value(value: Any) -> Any:
    """A JSON-safe form of a column value, reversible by ``decode_value``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, dt.timedelta):
        total = int(value.total_seconds())
        sign = "-" if total < 0 else ""
        total = abs(total)
        return f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
    if isinstance(value, (dict, list)):
        return {"$json": value}
    return value


def decode_value(value: Any) -> Any:
    """Inverse of ``encode_value``."""
    if isinstance(value, dict):
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
        if "$json" in value:
            import json

            return json.dumps(value["$json"])
    return value


class Database:
    """Operations shared by every engine; subclasses supply the dialect."""

    engine = "generic"
    ph = "%s"
    # Statements of one migration file run in one transaction with its record (PostgreSQL,
    # SQLite); MySQL/MariaDB commit DDL implicitly, so there each statement stands alone.
    transactional_ddl = True
    lock_timeout_s = 2.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    # -- plumbing -------------------------------------------------------------------
    def q(self, name: str) -> str:
        """Quote an identifier."""
        return '"' + name.replace('"', '""') + '"'

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement (or, on MySQL, a script) and discard any result."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params) if params else cur.execute(sql)
        finally:
            cur.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a query and return all its rows."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params) if params else cur.execute(sql)
            return list(cur.fetchall())
        finally:
            cur.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def begin(self) -> None:
        """Start a transaction."""
        self.execute("BEGIN")

    def commit(self) -> None:
        """Commit the current transaction."""
        self.execute("COMMIT")

    def rollback(self) -> None:
        """Roll back the current transaction, if any."""
        try:
            self.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - nothing to roll back is fine
            pass

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``with db.transaction():`` -- begin; commit when the block ends, roll back if it raises."""
        self.begin()
        try:
            yield
            self.commit()
        except Exception:
            self.rollback()
            raise

    # -- inspection -----------------------------------------------------------------
    def tables(self) -> set[str]:
        """Base tables of the plugin's database (or schema)."""
        raise NotImplementedError

    def exists(self, table: str) -> bool:
        """True when ``table`` exists."""
        return table in self.tables()

    def columns(self, table: str) -> list[str]:
        """Column names of ``table``, in order."""
        cur = self.conn.cursor()
        try:
            cur.execute(f"SELECT * FROM {self.q(table)} WHERE 1 = 0")
            cols = [d[0] for d in cur.description]
            cur.fetchall()
            return cols
        finally:
            cur.close()

    def primary_key(self, table: str) -> list[str]:
        """Columns of ``table``'s primary key, in order (empty when none)."""
        raise NotImplementedError

    def row_count(self, table: str) -> int:
        """Number of rows in ``table``."""
        return int(self.query(f"SELECT COUNT(*) FROM {self.q(table)}")[0][0])

    def fingerprint(self, table: str) -> str:
        """SHA-256 over column names and every row in a stable order: equal means identical."""
        cols = self.columns(table)
        order = ", ".join(str(i + 1) for i in range(len(cols)))
        digest = hashlib.sha256(repr(cols).encode())
        cur = self.conn.cursor()
        try:
            cur.execute(f"SELECT * FROM {self.q(table)} ORDER BY {order}")
            while rows := cur.fetchmany(5000):
                for row in rows:
                    digest.update(repr([encode_value(v) for v in row]).encode())
        finally:
            cur.close()
        return digest.hexdigest()

    # -- snapshots --------------------------------------------------------------------
    def copy_table(self, src: str, dst: str) -> None:
        """Create ``dst`` with the structure (columns, keys, indexes) and rows of ``src``."""
        raise NotImplementedError

    def copy_rows(self, src: str, dst: str, where: str) -> None:
        """Create ``dst`` holding the rows of ``src`` that match ``where``."""
        self.execute(f"CREATE TABLE {self.q(dst)} AS SELECT * FROM {self.q(src)} WHERE ({where})")

    def restore_snapshot(self, pairs: Sequence[tuple[str, str, str]]) -> None:
        """Atomically, for each (live, snapshot, kept): live -> kept, snapshot -> live.

        A live table that no longer exists is simply replaced by its snapshot.
        """
        raise NotImplementedError

    def restore_rows(self, table: str, where: str, backup: str) -> None:
        """In one transaction: delete the rows matching ``where``, put the backup's back."""
        with self.transaction():
            self.execute(f"DELETE FROM {self.q(table)} WHERE ({where})")
            self.execute(f"INSERT INTO {self.q(table)} SELECT * FROM {self.q(backup)}")

    def rename_table(self, old: str, new: str) -> None:
        """Rename one table."""
        self.execute(f"ALTER TABLE {self.q(old)} RENAME TO {self.q(new)}")

    def drop_tables(self, names: Iterable[str]) -> None:
        """Drop the named tables that exist."""
        for name in names:
            self.execute(f"DROP TABLE IF EXISTS {self.q(name)}")

    def count_missing_rows(self, kept: str, live: str) -> int | None:
        """Rows of ``kept`` whose primary key is absent from ``live``; None if unknowable."""
        try:
            pk = self.primary_key(live)
            if not pk or not set(pk) <= set(self.columns(kept)):
                return None
            cond = " AND ".join(f"l.{self.q(c)} = k.{self.q(c)}" for c in pk)
            sql = (
                f"SELECT COUNT(*) FROM {self.q(kept)} k WHERE NOT EXISTS "
                f"(SELECT 1 FROM {self.q(live)} l WHERE {cond})"
            )
            return int(self.query(sql)[0][0])
        except Exception:  # noqa: BLE001 - a count for the report, never worth failing for
            self.rollback()
            return None

    # -- migrations -------------------------------------------------------------------
    def ensure_migrations_table(self) -> None:
        """Create ``molam_agent_migrations`` if it does not exist (records are per site)."""
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            " site VARCHAR(16) NOT NULL DEFAULT '',"
            " plugin VARCHAR(64) NOT NULL,"
            " file_name VARCHAR(255) NOT NULL,"
            " sha256 CHAR(64) NOT NULL,"
            " version VARCHAR(64),"
            " applied_at VARCHAR(32) NOT NULL,"
            " PRIMARY KEY (site, plugin, file_name))"
        )
        if "site" not in self.columns(MIGRATIONS_TABLE):
            # A table written before records were namespaced: its rows belong to the first
            # installation that upgrades it (they were written by the only agent there was).
            self._add_site_column()

    def _add_site_column(self) -> None:
        self.execute(f"ALTER TABLE {MIGRATIONS_TABLE} ADD COLUMN site VARCHAR(16) NOT NULL DEFAULT ''")

    def applied_migrations(self, plugin: str, site: str = "") -> dict[str, str]:
        """file name -> sha256 of the migrations already applied for ``plugin`` on ``site``."""
        if MIGRATIONS_TABLE not in self.tables():
            return {}
        if "site" not in self.columns(MIGRATIONS_TABLE):
            rows = self.query(
                f"SELECT file_name, sha256 FROM {MIGRATIONS_TABLE} WHERE plugin = {self.ph}", (plugin,)
            )
        else:
            rows = self.query(
                f"SELECT file_name, sha256 FROM {MIGRATIONS_TABLE} WHERE plugin = {self.ph}"
                f" AND site IN ({self.ph}, '')",
                (plugin, site),
            )
        return {r[0]: r[1] for r in rows}

    def _record(self, plugin: str, name: str, sha: str, version: str, site: str = "") -> None:
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        p = self.ph
        self.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (site, plugin, file_name, sha256, version, applied_at)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
            (site, plugin, name, sha, version, now),
        )

    def forget_migration(self, plugin: str, name: str, site: str = "") -> None:
        """Delete the record of one migration (its effects were undone)."""
        p = self.ph
        self.execute(
            f"DELETE FROM {MIGRATIONS_TABLE} WHERE plugin = {p} AND file_name = {p} AND site IN ({p}, '')",
            (plugin, name, site),
        )

    # -- bounded waits -------------------------------------------------------------
    def set_lock_timeout(self, seconds: float) -> None:
        """Give up on any lock after ``seconds`` (see ``connect``)."""
        self.lock_timeout_s = seconds

    def is_lock_timeout(self, exc: BaseException) -> bool:
        """True when ``exc`` means a lock was not granted in time (worth a retry)."""
        return "lock" in str(exc).lower() and ("timeout" in str(exc).lower() or "locked" in str(exc).lower())

    def with_lock_retries(self, fn: Any, retries: int) -> Any:
        """Run ``fn()``; on a lock timeout, retry up to ``retries`` attempts in all."""
        for attempt in range(1, retries + 1):
            try:
                return fn()
            except Exception as exc:
                self.rollback()
                if attempt >= retries or not self.is_lock_timeout(exc):
                    raise
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    def long_transactions(self, tables: Sequence[str], older_than_s: float) -> list[str]:
        """Transactions open for longer than ``older_than_s`` that may hold ``tables``."""
        return []

    # -- statements of a migration -----------------------------------------------------
    def index_exists(self, table: str, index: str) -> bool:
        """True when ``table`` has an index named ``index``."""
        raise NotImplementedError

    def statement_done(self, st: Any) -> bool:
        """True when an expand statement's effect is already there (a re-run after rollback)."""
        if st.cls != "expand" or not st.table:
            return False
        if st.kind == "create_table":
            return st.table in self.tables()
        if st.table not in self.tables():
            return False
        if st.kind == "add_column":
            cols = set(self.columns(st.table))
            return all(c in cols for c in st.columns)
        if st.kind in ("create_index", "add_index") and st.index:
            return self.index_exists(st.table, st.index)
        return False

    def run_migration_file(
        self,
        plugin: str,
        site: str,
        version: str,
        name: str,
        sha: str,
        statements: Sequence[Any],
        retries: int,
        record: bool = True,
    ) -> None:
        """Run one migration file's statements and record it, retrying on lock timeouts.

        Expand statements already in effect are skipped, so a file whose additive schema
        stayed after a rollback runs again without error.
        """
        if self.transactional_ddl:

            def whole() -> None:
                with self.transaction():
                    for st in statements:
                        if not self.statement_done(st):
                            self._run_script(st.sql)
                    if record:
                        self._record(plugin, name, sha, version, site)

            self.with_lock_retries(whole, retries)
            return
        for st in statements:
            if not self.statement_done(st):
                self.with_lock_retries(lambda st=st: self._run_script(st.sql), retries)
        if record:
            self._record(plugin, name, sha, version, site)

    # -- change capture (snapshot mode) ---------------------------------------------------
    def set_migrating(self, on: bool) -> None:
        """Mark this session's writes as the migration's: change capture ignores them."""
        raise NotImplementedError

    def create_change_log(self, chg: str) -> None:
        """The table the capture triggers write changed primary keys into.

        One row per (table, phase, key): ``op`` is the last operation the shop committed on
        that key -- ``u`` (inserted or updated) or ``d`` (deleted) -- overwritten by each later
        one, so the log keeps the window's order where it matters: the latest write wins.
        """
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {self.q(chg)} (tbl VARCHAR(64) NOT NULL,"
            f" pk {self._change_log_key_type()} NOT NULL,"
            " phase CHAR(1) NOT NULL, op CHAR(1) NOT NULL DEFAULT 'u', PRIMARY KEY (tbl, phase, pk))"
        )
        if "op" not in self.columns(chg):
            # A log created by an earlier agent (keys only): its rows read as ``u``.
            self.execute(f"ALTER TABLE {self.q(chg)} ADD COLUMN op CHAR(1) NOT NULL DEFAULT 'u'")

    def _change_log_key_type(self) -> str:
        """The change log's key column: ``CHANGE_LOG_KEY_CHARS`` characters, compared exactly.

        Two keys the shop's table tells apart must stay two rows of the log, or one of their
        window writes would never be merged back.
        """
        return f"VARCHAR({CHANGE_LOG_KEY_CHARS})"

    def capture_refusal(self, table: str) -> str | None:
        """Why snapshot mode cannot capture ``table``'s writes exactly, or None when it can.

        The capture logs a key as its columns' text joined by one separator character, in a
        column of ``CHANGE_LOG_KEY_CHARS`` characters. A key column whose text has no known
        bound within that (long or unbounded character types, TEXT, binary data, types this
        check does not know) refuses the table, and so does a composite key whose columns'
        widths add up to more.
        """
        pk = self.primary_key(table)
        if not pk:
            return f"table {table} has no primary key"
        widths = self._key_text_widths(table)
        total = len(pk) - 1  # the separators
        for col in pk:
            typ, width = widths.get(col, ("unknown type", None))
            if width is None:
                return (
                    f"primary key column {table}.{col} ({typ}) can hold values the change log cannot"
                    f" store exactly (at most {CHANGE_LOG_KEY_CHARS} characters of text)"
                )
            if width > CHANGE_LOG_KEY_CHARS:
                return (
                    f"primary key column {table}.{col} ({typ}) can hold {width} characters, more than"
                    f" the {CHANGE_LOG_KEY_CHARS} the change log stores per key"
                )
            total += width
        if total > CHANGE_LOG_KEY_CHARS:
            return (
                f"primary key ({', '.join(pk)}) of {table} can reach {total} characters once encoded,"
                f" more than the {CHANGE_LOG_KEY_CHARS} the change log stores per key"
            )
        return None

    def _key_text_widths(self, table: str) -> dict[str, tuple[str, int | None]]:
        """column -> (its type, the most characters its value takes as the capture logs it).

        ``None``: unbounded, or not logged as exact text.
        """
        raise NotImplementedError

    def install_capture(self, table: str, trigger: str, chg: str, logical: str, phase: str) -> None:
        """Log into ``chg`` the primary key of every row inserted, updated or deleted in ``table``.

        An update that changes a row's key logs the old key as deleted and the new one as
        written. Writes of a session marked by ``set_migrating`` are not logged.
        """
        raise NotImplementedError

    def drop_capture(self, table: str, trigger: str) -> None:
        """Remove what ``install_capture`` created (idempotent)."""
        raise NotImplementedError

    def _pk_expr(self, alias: str, pk: Sequence[str]) -> str:
        raise NotImplementedError

    def _null_safe_eq(self, a: str, b: str) -> str:
        return f"{a} IS NOT DISTINCT FROM {b}"

    def _upsert(
        self, live: str, cols: Sequence[str], pk: Sequence[str], select: str, params: Sequence[Any]
    ) -> None:
        raise NotImplementedError

    def _key_in(self, alias: str, pk: Sequence[str], table: str, keys: Sequence[str]) -> tuple[str, list]:
        """SQL matching rows of ``alias`` whose key (as the capture logs it) is in ``keys``."""
        marks = ", ".join([self.ph] * len(keys))
        if len(pk) == 1:
            return f"{alias}.{self.q(pk[0])} IN ({marks})", list(keys)
        return f"{self._pk_expr(alias, pk)} IN ({marks})", list(keys)

    def execute_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return how many rows it changed."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params) if params else cur.execute(sql)
            return max(int(cur.rowcount or 0), 0)
        finally:
            cur.close()

    def merge_back(self, live: str, kept: str, chg: str, logical: str) -> int:
        """Apply to ``live`` (the restored copy) every write the shop made to ``kept`` in the window.

        The keys are those the capture logged while ``kept`` was live (phase ``w``), minus those
        written again since the restore (phase ``r``: newer than anything in the window). A key
        whose last logged operation is a write is upserted from ``kept`` (the columns both
        tables share); one whose last operation is a delete is deleted from ``live``, so a row
        deleted then re-inserted comes back with its latest content and one deleted last stays
        deleted. The batch's keys are locked before the phase ``r`` check, rows or not (see
        ``_lock_keys``), so a write racing the merge waits for it and is never undone.
        Each batch is one transaction and every step is idempotent: running the merge again
        (after a kill) changes nothing the shop has not changed since. Returns how many rows
        were changed: upserted rows whose whole row differed, plus rows deleted.
        """
        pk = self.primary_key(live)
        if not pk or not set(pk) <= set(self.columns(kept)):
            raise MigrationError(f"cannot merge {kept} back into {live}: no common primary key")
        kept_cols = set(self.columns(kept))
        cols = [c for c in self.columns(live) if c in kept_cols]
        p = self.ph
        op = "op" if "op" in self.columns(chg) else "'u'"
        last_op = dict(
            self.query(f"SELECT pk, {op} FROM {self.q(chg)} WHERE tbl = {p} AND phase = 'w'", (logical,))
        )
        written = sorted(last_op)
        same = " AND ".join(self._null_safe_eq(f"l.{self.q(c)}", f"k.{self.q(c)}") for c in cols)
        select = ", ".join(f"k.{self.q(c)}" for c in cols)
        target = self.q(live)
        merged = 0
        for i in range(0, len(written), 500):
            batch = written[i : i + 500]
            with self.transaction():
                self._lock_keys(live, pk, batch)
                marks = ", ".join([p] * len(batch))
                newer = {
                    r[0]
                    for r in self.query(
                        f"SELECT pk FROM {self.q(chg)} WHERE tbl = {p} AND phase = 'r' AND pk IN ({marks})",
                        (logical, *batch),
                    )
                }
                upserts = [k for k in batch if k not in newer and last_op[k] != "d"]
                deletes = [k for k in batch if k not in newer and last_op[k] == "d"]
                if upserts:
                    where, params = self._key_in("k", pk, kept, upserts)
                    merged += int(
                        self.query(
                            f"SELECT COUNT(*) FROM {self.q(kept)} k WHERE {where} AND NOT EXISTS"
                            f" (SELECT 1 FROM {target} l WHERE {same})",
                            params,
                        )[0][0]
                    )
                    self._upsert(
                        live, cols, pk, f"SELECT {select} FROM {self.q(kept)} k WHERE {where}", params
                    )
                if deletes:
                    # The table's own name as the alias: MySQL's single-table DELETE takes none.
                    where, params = self._key_in(target, pk, live, deletes)
                    # Not a row ``kept`` still holds: the log tells keys apart byte for byte,
                    # the table by its own collation, so a key deleted as `abc` may have been
                    # inserted again as `ABC` -- logged apart, one row -- and upserted above.
                    held = " AND ".join(f"k.{self.q(c)} = {target}.{self.q(c)}" for c in pk)
                    merged += self.execute_count(
                        f"DELETE FROM {target} WHERE {where}"
                        f" AND NOT EXISTS (SELECT 1 FROM {self.q(kept)} k WHERE {held})",
                        params,
                    )
        return merged

    def _lock_keys(self, live: str, pk: Sequence[str], keys: Sequence[str]) -> None:
        """Inside the merge's transaction: no shop write to ``keys`` of ``live`` until it ends.

        Keys without a row (inserted during the window, or deleted from the copy) must be
        locked too, or the shop could write one between the phase ``r`` check and the upsert
        or delete, which would then undo it.
        """
        raise NotImplementedError

    def raise_auto_increment(self, snap: str, live: str) -> None:
        """Before ``snap`` replaces ``live``: never hand out an id ``live`` already gave."""

    def _run_script(self, sql: str) -> None:
        """Run a migration file, which may hold several statements."""
        self.execute(sql)

    def apply_migrations(
        self, plugin: str, version: str, migrations: Sequence[tuple[str, str, str]]
    ) -> list[str]:
        """Run (name, sha256, sql) migrations not yet recorded, in one transaction.

        Engines whose DDL commits implicitly (MySQL/MariaDB) still get each file wrapped in a
        transaction, which keeps data-only migrations atomic; the table snapshot covers the rest.
        """
        done = self.applied_migrations(plugin)
        applied: list[str] = []
        with self.transaction():
            for name, sha, sql in migrations:
                if name in done:
                    continue
                try:
                    if sql.strip():
                        self._run_script(sql)
                except Exception as exc:
                    raise MigrationError(f"migration {name} failed: {exc}") from exc
                self._record(plugin, name, sha, version)
                applied.append(name)
        return applied

    # -- archive dumps ----------------------------------------------------------------
    def table_ddl(self, table: str) -> str:
        """A ``CREATE TABLE`` statement that recreates ``table`` (for archives)."""
        raise NotImplementedError

    def iter_rows(self, table: str) -> Iterator[tuple]:
        """Every row of ``table``, streamed."""
        cur = self.conn.cursor()
        try:
            cur.execute(f"SELECT * FROM {self.q(table)}")
            while rows := cur.fetchmany(2000):
                yield from rows
        finally:
            cur.close()

    def create_from_ddl(self, ddl: str, original: str, new: str) -> None:
        """Create table ``new`` from the DDL ``table_ddl(original)`` returned."""
        pattern = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(`[^`]+`|\"[^\"]+\"|\S+)", re.I)
        match = pattern.match(ddl)
        if not match:
            raise MigrationError(f"cannot read the saved structure of {original}")
        self.execute(f"CREATE TABLE {self.q(new)}" + ddl[match.end() :])

    def insert_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert rows (JSON-decoded values) into ``table``; return how many."""
        cols = ", ".join(self.q(c) for c in columns)
        marks = ", ".join([self.ph] * len(columns))
        sql = f"INSERT INTO {self.q(table)} ({cols}) VALUES ({marks})"
        total = 0
        batch: list[tuple] = []
        cur = self.conn.cursor()
        try:
            for row in rows:
                batch.append(tuple(decode_value(v) for v in row))
                if len(batch) >= 1000:
                    cur.executemany(sql, batch)
                    total += len(batch)
                    batch.clear()
            if batch:
                cur.executemany(sql, batch)
                total += len(batch)
        finally:
            cur.close()
        return total
