"""Database access for backups, migrations and atomic table restores.

One small adapter per engine -- MySQL/MariaDB (PyMySQL), PostgreSQL (psycopg 3) and SQLite
(stdlib) -- exposing the few operations the agent needs. The important one is
``restore_snapshot``: every table of the plugin is put back in ONE atomic step (a single
``RENAME TABLE`` on MySQL/MariaDB, one transaction on PostgreSQL and SQLite), so a crash
can never leave half of the tables old and half new.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .errors import ConfigError, MigrationError

MIGRATIONS_TABLE = "molam_agent_migrations"
# Ids kept free between the live table's AUTO_INCREMENT and a restored table's (MySQL/MariaDB).
AUTO_INCREMENT_MARGIN = 1000


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
    if scheme in ("mysql", "mariadb"):
        db: Database = MySQLDatabase(url)
    elif scheme in ("postgres", "postgresql"):
        db = PostgresDatabase(url)
    elif scheme == "sqlite":
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
        self.begin()
        try:
            self.execute(f"DELETE FROM {self.q(table)} WHERE ({where})")
            self.execute(f"INSERT INTO {self.q(table)} SELECT * FROM {self.q(backup)}")
            self.commit()
        except Exception:
            self.rollback()
            raise

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
                self.begin()
                try:
                    for st in statements:
                        if not self.statement_done(st):
                            self._run_script(st.sql)
                    if record:
                        self._record(plugin, name, sha, version, site)
                    self.commit()
                except Exception:
                    self.rollback()
                    raise

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
        """The table the capture triggers write changed primary keys into."""
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {self.q(chg)} (tbl VARCHAR(64) NOT NULL, pk VARCHAR(255) NOT NULL,"
            " phase CHAR(1) NOT NULL, PRIMARY KEY (tbl, phase, pk))"
        )

    def install_capture(self, table: str, trigger: str, chg: str, logical: str, phase: str) -> None:
        """Log the primary key of every row inserted or updated in ``table`` into ``chg``."""
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

    def merge_back(self, live: str, kept: str, chg: str, logical: str) -> int:
        """Copy into ``live`` every row the shop wrote to ``kept`` during the window.

        Rows are those whose key the capture logged while ``kept`` was live (phase ``w``), minus
        those written again since the restore (phase ``r``: newer than the kept copy). Only the
        columns both tables share are copied. The live rows are locked before the phase ``r``
        check, so a write racing the merge is never overwritten. Returns how many rows differed
        (whole-row comparison, i.e. the rows' hashes), which is how many were merged.
        """
        pk = self.primary_key(live)
        if not pk or not set(pk) <= set(self.columns(kept)):
            raise MigrationError(f"cannot merge {kept} back into {live}: no common primary key")
        kept_cols = set(self.columns(kept))
        cols = [c for c in self.columns(live) if c in kept_cols]
        p = self.ph
        written = sorted(
            {r[0] for r in self.query(f"SELECT pk FROM {self.q(chg)} WHERE tbl = {p} AND phase = 'w'", (logical,))}
        )
        same = " AND ".join(self._null_safe_eq(f"l.{self.q(c)}", f"k.{self.q(c)}") for c in cols)
        select = ", ".join(f"k.{self.q(c)}" for c in cols)
        merged = 0
        for i in range(0, len(written), 500):
            batch = written[i : i + 500]
            self.begin()
            try:
                lock_sql, lock_params = self._key_in("l", pk, live, batch)
                self.query(f"SELECT 1 FROM {self.q(live)} l WHERE {lock_sql} FOR UPDATE", lock_params)
                marks = ", ".join([p] * len(batch))
                newer = {
                    r[0]
                    for r in self.query(
                        f"SELECT pk FROM {self.q(chg)} WHERE tbl = {p} AND phase = 'r' AND pk IN ({marks})",
                        (logical, *batch),
                    )
                }
                todo = [k for k in batch if k not in newer]
                if todo:
                    where, params = self._key_in("k", pk, kept, todo)
                    merged += int(
                        self.query(
                            f"SELECT COUNT(*) FROM {self.q(kept)} k WHERE {where} AND NOT EXISTS"
                            f" (SELECT 1 FROM {self.q(live)} l WHERE {same})",
                            params,
                        )[0][0]
                    )
                    self._upsert(live, cols, pk, f"SELECT {select} FROM {self.q(kept)} k WHERE {where}", params)
                self.commit()
            except Exception:
                self.rollback()
                raise
        return merged

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
        self.begin()
        try:
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
            self.commit()
        except Exception:
            self.rollback()
            raise
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


class MySQLDatabase(Database):
    """MySQL and MariaDB through PyMySQL."""

    engine = "mysql"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            import pymysql
            from pymysql.constants import CLIENT
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "MySQL/MariaDB support needs PyMySQL (pip install 'molam-upgrades[agent]')"
            ) from exc
        parts = urllib.parse.urlsplit(url)
        opts = dict(urllib.parse.parse_qsl(parts.query))
        kwargs: dict[str, Any] = {
            "user": urllib.parse.unquote(parts.username or "root"),
            "password": urllib.parse.unquote(parts.password or ""),
            "database": parts.path.lstrip("/") or None,
            "charset": opts.get("charset", "utf8mb4"),
            "autocommit": True,
            "client_flag": CLIENT.MULTI_STATEMENTS,
            "connect_timeout": 10,
        }
        if opts.get("unix_socket"):
            kwargs["unix_socket"] = opts["unix_socket"]
        else:
            kwargs["host"] = parts.hostname or "127.0.0.1"
            kwargs["port"] = parts.port or 3306
        if not kwargs["database"]:
            raise ConfigError("database.url must name a database")
        self.conn = pymysql.connect(**kwargs)

    transactional_ddl = False

    def q(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def set_lock_timeout(self, seconds: float) -> None:
        super().set_lock_timeout(seconds)
        whole = max(1, int(round(seconds)))
        self.execute(f"SET SESSION lock_wait_timeout = {whole}, innodb_lock_wait_timeout = {whole}")

    def is_lock_timeout(self, exc: BaseException) -> bool:
        code = exc.args[0] if getattr(exc, "args", None) else None
        return code in (1205, 1213) or super().is_lock_timeout(exc)

    def long_transactions(self, tables: Sequence[str], older_than_s: float) -> list[str]:
        # InnoDB does not say which tables a transaction has read; any old transaction of a
        # session using this database may hold a metadata lock on the plugin's tables.
        rows = self.query(
            "SELECT t.trx_mysql_thread_id, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), p.db"
            " FROM information_schema.innodb_trx t"
            " LEFT JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
            " WHERE t.trx_started < NOW() - INTERVAL %s SECOND AND t.trx_mysql_thread_id <> CONNECTION_ID()"
            " AND (p.db IS NULL OR p.db = DATABASE())",
            (int(older_than_s),),
        )
        return [f"thread {r[0]} open for {r[1]}s" for r in rows]

    def index_exists(self, table: str, index: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE()"
            " AND table_name = %s AND index_name = %s LIMIT 1",
            (table, index),
        )
        return bool(rows)

    def _add_site_column(self) -> None:
        self.execute(
            f"ALTER TABLE {MIGRATIONS_TABLE} ADD COLUMN site VARCHAR(16) NOT NULL DEFAULT '' FIRST,"
            " DROP PRIMARY KEY, ADD PRIMARY KEY (site, plugin, file_name)"
        )

    def set_migrating(self, on: bool) -> None:
        self.execute("SET @molam_agent_migrating = " + ("1" if on else "NULL"))

    def _pk_expr(self, alias: str, pk: Sequence[str]) -> str:
        return "CONCAT_WS(CHAR(31), " + ", ".join(f"{alias}.{self.q(c)}" for c in pk) + ")"

    def _null_safe_eq(self, a: str, b: str) -> str:
        return f"{a} <=> {b}"

    def install_capture(self, table: str, trigger: str, chg: str, logical: str, phase: str) -> None:
        pk = self.primary_key(table)
        if not pk:
            raise MigrationError(f"snapshot mode needs a primary key on {table}")
        key = "CONCAT_WS(CHAR(31), " + ", ".join(f"NEW.{self.q(c)}" for c in pk) + ")"
        for event, suffix in (("INSERT", "i"), ("UPDATE", "u")):
            name = f"{trigger}_{suffix}"
            self.execute(f"DROP TRIGGER IF EXISTS {self.q(name)}")
            self.execute(
                f"CREATE TRIGGER {self.q(name)} AFTER {event} ON {self.q(table)} FOR EACH ROW"
                f" BEGIN IF @molam_agent_migrating IS NULL THEN"
                f" INSERT IGNORE INTO {self.q(chg)} (tbl, pk, phase) VALUES ({_lit(logical)}, {key}, {_lit(phase)});"
                " END IF; END"
            )

    def drop_capture(self, table: str, trigger: str) -> None:
        for suffix in ("i", "u"):
            self.execute(f"DROP TRIGGER IF EXISTS {self.q(trigger + '_' + suffix)}")

    def _upsert(
        self, live: str, cols: Sequence[str], pk: Sequence[str], select: str, params: Sequence[Any]
    ) -> None:
        names = ", ".join(self.q(c) for c in cols)
        updates = ", ".join(f"{self.q(c)} = VALUES({self.q(c)})" for c in cols if c not in pk)
        self.execute(
            f"INSERT INTO {self.q(live)} ({names}) {select} ON DUPLICATE KEY UPDATE "
            + (updates or f"{self.q(pk[0])} = {self.q(pk[0])}"),
            params,
        )

    def raise_auto_increment(self, snap: str, live: str) -> None:
        rows = self.query(
            "SELECT table_name, auto_increment FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name IN (%s, %s)",
            (live, snap),
        )
        values = {r[0]: r[1] for r in rows}
        if values.get(live) is None:
            return
        try:
            top = self.query(f"SELECT MAX({self.q(self.primary_key(live)[0])}) FROM {self.q(live)}")[0][0]
        except Exception:  # noqa: BLE001 - a non-numeric key has no AUTO_INCREMENT anyway
            top = None
        # Orders taken between this statement and the rename still get ids below the margin;
        # they land in the kept table and are merged back under their own ids.
        target = max(int(values[live] or 0), int(top or 0) + 1) + AUTO_INCREMENT_MARGIN
        if int(values.get(snap) or 0) < target:
            self.execute(f"ALTER TABLE {self.q(snap)} AUTO_INCREMENT = {target}")

    def begin(self) -> None:
        self.conn.begin()

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        try:
            self.conn.rollback()
        except Exception:  # noqa: BLE001
            pass

    def tables(self) -> set[str]:
        rows = self.query(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
        )
        return {r[0] for r in rows}

    def primary_key(self, table: str) -> list[str]:
        rows = self.query(
            "SELECT column_name FROM information_schema.key_column_usage"
            " WHERE table_schema = DATABASE() AND table_name = %s AND constraint_name = 'PRIMARY'"
            " ORDER BY ordinal_position",
            (table,),
        )
        return [r[0] for r in rows]

    def copy_table(self, src: str, dst: str) -> None:
        self.execute(f"CREATE TABLE {self.q(dst)} LIKE {self.q(src)}")
        # READ COMMITTED: a consistent read that takes no lock on the shop's rows.
        self.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        try:
            self.execute(f"INSERT INTO {self.q(dst)} SELECT * FROM {self.q(src)}")
        finally:
            self.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def rename_table(self, old: str, new: str) -> None:
        self.execute(f"RENAME TABLE {self.q(old)} TO {self.q(new)}")

    def restore_snapshot(self, pairs: Sequence[tuple[str, str, str]]) -> None:
        present = self.tables()
        clauses: list[str] = []
        for live, snap, kept in pairs:
            if live in present:
                clauses.append(f"{self.q(live)} TO {self.q(kept)}")
            clauses.append(f"{self.q(snap)} TO {self.q(live)}")
        if clauses:
            # One statement: MariaDB/MySQL apply every rename or none.
            self.execute("RENAME TABLE " + ", ".join(clauses))

    def after_restore(self, live: str, kept: str) -> None:
        """Keep AUTO_INCREMENT ahead of ids handed out after the snapshot (now in ``kept``)."""
        rows = self.query(
            "SELECT table_name, auto_increment FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name IN (%s, %s)",
            (live, kept),
        )
        values = {r[0]: r[1] for r in rows}
        if values.get(kept) and (values.get(live) or 0) < values[kept]:
            self.execute(f"ALTER TABLE {self.q(live)} AUTO_INCREMENT = {int(values[kept])}")

    def _run_script(self, sql: str) -> None:
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            # With several statements, errors of the later ones surface on nextset().
            while cur.nextset():
                pass
        finally:
            cur.close()

    def table_ddl(self, table: str) -> str:
        return self.query(f"SHOW CREATE TABLE {self.q(table)}")[0][1]

    def iter_rows(self, table: str) -> Iterator[tuple]:
        import pymysql.cursors

        cur = self.conn.cursor(pymysql.cursors.SSCursor)
        try:
            cur.execute(f"SELECT * FROM {self.q(table)}")
            while rows := cur.fetchmany(2000):
                yield from rows
        finally:
            cur.close()


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3; tables live in the connection's current schema."""

    engine = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "PostgreSQL support needs psycopg 3 (pip install 'molam-upgrades[agent]')"
            ) from exc
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)

    def set_lock_timeout(self, seconds: float) -> None:
        super().set_lock_timeout(seconds)
        self.execute(f"SET lock_timeout = '{int(seconds * 1000)}ms'")

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return getattr(exc, "sqlstate", None) in ("55P03", "40P01") or super().is_lock_timeout(exc)

    def long_transactions(self, tables: Sequence[str], older_than_s: float) -> list[str]:
        rows = self.query(
            "SELECT DISTINCT a.pid, round(extract(epoch FROM now() - a.xact_start))::int"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.relation = ANY(SELECT to_regclass(t) FROM unnest(%s::text[]) t)"
            " AND a.pid <> pg_backend_pid() AND a.xact_start < now() - make_interval(secs => %s)",
            ([self.q(t) for t in tables], float(older_than_s)),
        )
        return [f"backend {r[0]} open for {r[1]}s" for r in rows]

    def index_exists(self, table: str, index: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s AND indexname = %s",
            (table, index),
        )
        return bool(rows)

    def _add_site_column(self) -> None:
        pkey = self.query(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
            (MIGRATIONS_TABLE,),
        )
        self.begin()
        try:
            self.execute(f"ALTER TABLE {MIGRATIONS_TABLE} ADD COLUMN site VARCHAR(16) NOT NULL DEFAULT ''")
            if pkey:
                self.execute(f"ALTER TABLE {MIGRATIONS_TABLE} DROP CONSTRAINT {self.q(pkey[0][0])}")
            self.execute(f"ALTER TABLE {MIGRATIONS_TABLE} ADD PRIMARY KEY (site, plugin, file_name)")
            self.commit()
        except Exception:
            self.rollback()
            raise

    def set_migrating(self, on: bool) -> None:
        self.execute("SET molam.migrating = " + ("'on'" if on else "'off'"))

    def _pk_expr(self, alias: str, pk: Sequence[str]) -> str:
        return "concat_ws(chr(31), " + ", ".join(f"{alias}.{self.q(c)}::text" for c in pk) + ")"

    def _key_in(self, alias: str, pk: Sequence[str], table: str, keys: Sequence[str]) -> tuple[str, list]:
        if len(pk) == 1:
            typ = self.query(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = to_regclass(%s) AND attname = %s",
                (self.q(table), pk[0]),
            )[0][0]
            if re.match(r"^[a-z0-9 ()_,]+$", typ):
                return f"{alias}.{self.q(pk[0])} = ANY(%s::{typ}[])", [list(keys)]
        return super()._key_in(alias, pk, table, keys)

    def install_capture(self, table: str, trigger: str, chg: str, logical: str, phase: str) -> None:
        pk = self.primary_key(table)
        if not pk:
            raise MigrationError(f"snapshot mode needs a primary key on {table}")
        fn = self.q(f"{trigger}_fn")
        self.execute(
            f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $f$"
            " DECLARE k text; j jsonb; BEGIN"
            " IF coalesce(current_setting('molam.migrating', true), '') = 'on' THEN RETURN NULL; END IF;"
            " j := to_jsonb(NEW);"
            " FOR i IN 2 .. TG_NARGS - 1 LOOP"
            "  k := CASE WHEN k IS NULL THEN j ->> TG_ARGV[i] ELSE k || chr(31) || (j ->> TG_ARGV[i]) END;"
            " END LOOP;"
            f" INSERT INTO {self.q(chg)} (tbl, pk, phase) VALUES (TG_ARGV[0], k, TG_ARGV[1]) ON CONFLICT DO NOTHING;"
            " RETURN NULL; END $f$"
        )
        args = ", ".join(_lit(a) for a in (logical, phase, *pk))
        self.execute(f"DROP TRIGGER IF EXISTS {self.q(trigger)} ON {self.q(table)}")
        self.execute(
            f"CREATE TRIGGER {self.q(trigger)} AFTER INSERT OR UPDATE ON {self.q(table)}"
            f" FOR EACH ROW EXECUTE FUNCTION {fn}({args})"
        )

    def drop_capture(self, table: str, trigger: str) -> None:
        if table in self.tables():
            self.execute(f"DROP TRIGGER IF EXISTS {self.q(trigger)} ON {self.q(table)}")
        if not self.query("SELECT 1 FROM pg_trigger WHERE tgname = %s", (trigger,)):
            self.execute(f"DROP FUNCTION IF EXISTS {self.q(trigger + '_fn')}()")

    def _upsert(
        self, live: str, cols: Sequence[str], pk: Sequence[str], select: str, params: Sequence[Any]
    ) -> None:
        names = ", ".join(self.q(c) for c in cols)
        keys = ", ".join(self.q(c) for c in pk)
        updates = ", ".join(f"{self.q(c)} = EXCLUDED.{self.q(c)}" for c in cols if c not in pk)
        self.execute(
            f"INSERT INTO {self.q(live)} ({names}) OVERRIDING SYSTEM VALUE {select}"
            f" ON CONFLICT ({keys}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING"),
            params,
        )

    def tables(self) -> set[str]:
        rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {r[0] for r in rows}

    def primary_key(self, table: str) -> list[str]:
        rows = self.query(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = to_regclass(%s) AND i.indisprimary",
            (self.q(table),),
        )
        return [r[0] for r in rows]

    def _sequences(self, table: str) -> dict[str, str]:
        """column -> sequence for serial and identity columns of ``table``."""
        rows = self.query(
            "SELECT a.attname, pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a"
            " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (self.q(table), self.q(table)),
        )
        return {r[0]: r[1] for r in rows if r[1]}

    def _sync_sequences(self, dst: str, src: str) -> None:
        """Move ``dst``'s sequences at least as far as ``src``'s, so no id is handed out twice."""
        src_seqs = self._sequences(src)
        for col, seq in self._sequences(dst).items():
            other = src_seqs.get(col)
            if other and other != seq:
                self.execute(
                    "SELECT setval(%s::regclass, GREATEST("
                    " (SELECT last_value FROM " + other + "),"
                    " (SELECT last_value FROM " + seq + ")))",
                    (seq,),
                )

    def copy_table(self, src: str, dst: str) -> None:
        self.begin()
        try:
            self.execute(f"CREATE TABLE {self.q(dst)} (LIKE {self.q(src)} INCLUDING ALL)")
            self.execute(f"INSERT INTO {self.q(dst)} OVERRIDING SYSTEM VALUE SELECT * FROM {self.q(src)}")
            self._sync_sequences(dst, src)
            self.commit()
        except Exception:
            self.rollback()
            raise

    def restore_snapshot(self, pairs: Sequence[tuple[str, str, str]]) -> None:
        present = self.tables()
        self.begin()
        try:
            for live, snap, kept in pairs:
                if live in present:
                    self.execute(f"ALTER TABLE {self.q(live)} RENAME TO {self.q(kept)}")
                self.execute(f"ALTER TABLE {self.q(snap)} RENAME TO {self.q(live)}")
                if live in present:
                    self._adopt_sequences(live, kept)
            self.commit()
        except Exception:
            self.rollback()
            raise

    def _adopt_sequences(self, live: str, kept: str) -> None:
        # A serial column's sequence is owned by the table it was created with -- now the
        # kept one. Hand it to the restored table so dropping the kept table later cannot
        # take the sequence (and the restored table's default) with it.
        rows = self.query(
            "SELECT d.objid::regclass::text, a.attname FROM pg_depend d"
            " JOIN pg_class c ON c.oid = d.objid AND c.relkind = 'S'"
            " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
            " WHERE d.refobjid = to_regclass(%s) AND d.classid = 'pg_class'::regclass"
            " AND d.deptype = 'a'",
            (self.q(kept),),
        )
        live_cols = set(self.columns(live))
        for seq, col in rows:
            if col in live_cols:
                self.execute(f"ALTER SEQUENCE {seq} OWNED BY {self.q(live)}.{self.q(col)}")
        self._sync_sequences(live, kept)

    def after_restore(self, live: str, kept: str) -> None:
        """Nothing left to do: sequences were fixed inside the restore transaction."""

    def table_ddl(self, table: str) -> str:
        cols = self.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
            " pg_get_expr(d.adbin, d.adrelid), a.attidentity"
            " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY a.attnum",
            (self.q(table),),
        )
        parts = []
        for name, typ, notnull, default, identity in cols:
            col = f"{self.q(name)} {typ}"
            if identity:
                col += " GENERATED " + ("ALWAYS" if identity == "a" else "BY DEFAULT") + " AS IDENTITY"
            elif default is not None:
                col += f" DEFAULT {default}"
            if notnull:
                col += " NOT NULL"
            parts.append(col)
        for (definition,) in self.query(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'u', 'c') ORDER BY contype",
            (self.q(table),),
        ):
            parts.append(definition)
        return f"CREATE TABLE {self.q(table)} (" + ", ".join(parts) + ")"

    def iter_rows(self, table: str) -> Iterator[tuple]:
        cur = self.conn.cursor()
        try:
            yield from cur.stream(f"SELECT * FROM {self.q(table)}")
        finally:
            cur.close()

    def insert_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        cols = ", ".join(self.q(c) for c in columns)
        total = 0
        cur = self.conn.cursor()
        try:
            with cur.copy(f"COPY {self.q(table)} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(tuple(decode_value(v) for v in row))
                    total += 1
        finally:
            cur.close()
        return total


class SQLiteDatabase(Database):
    """SQLite through the standard library (``sqlite:///absolute/path.db``)."""

    engine = "sqlite"
    ph = "?"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.split("://", 1)[1]
        if not path:
            raise ConfigError("sqlite URL needs a path: sqlite:///var/lib/shop.db")
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        # Renaming a table must not rewrite other tables' references to it: the kept table
        # is an archive, the restored one takes the name back.
        self.conn.execute("PRAGMA legacy_alter_table = ON")

    def set_lock_timeout(self, seconds: float) -> None:
        super().set_lock_timeout(seconds)
        self.conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    def index_exists(self, table: str, index: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name = ?", (table, index)
        )
        return bool(rows)

    def set_migrating(self, on: bool) -> None:
        raise MigrationError("snapshot mode is not available on SQLite: ship migrations/down/ files")

    def tables(self) -> set[str]:
        rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        return {r[0] for r in rows}

    def primary_key(self, table: str) -> list[str]:
        rows = self.query(f"PRAGMA table_info({self.q(table)})")
        return [r[1] for r in sorted(rows, key=lambda r: r[5]) if r[5]]

    def copy_table(self, src: str, dst: str) -> None:
        self.begin()
        try:
            self.create_from_ddl(self.table_ddl(src), src, dst)
            rows = self.query(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                (src,),
            )
            for i, (_name, sql) in enumerate(rows):
                m = re.match(
                    r"^(CREATE\s+(?:UNIQUE\s+)?INDEX)\s+(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+ON\s+\S+\s*(\(.*)$",
                    sql,
                    re.I | re.S,
                )
                if m:
                    self.execute(f"{m.group(1)} {self.q(f'{dst}_i{i}')} ON {self.q(dst)} {m.group(2)}")
            self.execute(f"INSERT INTO {self.q(dst)} SELECT * FROM {self.q(src)}")
            self.commit()
        except Exception:
            self.rollback()
            raise

    def restore_snapshot(self, pairs: Sequence[tuple[str, str, str]]) -> None:
        present = self.tables()
        self.begin()
        try:
            for live, snap, kept in pairs:
                if live in present:
                    self.execute(f"ALTER TABLE {self.q(live)} RENAME TO {self.q(kept)}")
                self.execute(f"ALTER TABLE {self.q(snap)} RENAME TO {self.q(live)}")
            self.commit()
        except Exception:
            self.rollback()
            raise

    def after_restore(self, live: str, kept: str) -> None:
        """SQLite's rowid allocation already follows the table's largest key."""

    def _run_script(self, sql: str) -> None:
        # executescript() would commit our transaction first; split into statements instead.
        buf = ""
        for line in sql.splitlines(keepends=True):
            buf += line
            if sqlite3.complete_statement(buf):
                self.conn.execute(buf)
                buf = ""
        if buf.strip():
            self.conn.execute(buf)

    def table_ddl(self, table: str) -> str:
        return self.query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))[0][0]
