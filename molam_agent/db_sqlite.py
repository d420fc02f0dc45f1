"""SQLite through the standard library."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

from .db import Database
from .errors import ConfigError, MigrationError


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
        with self.transaction():
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

    def restore_snapshot(self, pairs: Sequence[tuple[str, str, str]]) -> None:
        present = self.tables()
        with self.transaction():
            for live, snap, kept in pairs:
                if live in present:
                    self.execute(f"ALTER TABLE {self.q(live)} RENAME TO {self.q(kept)}")
                self.execute(f"ALTER TABLE {self.q(snap)} RENAME TO {self.q(live)}")

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
