"""MySQL and MariaDB through PyMySQL."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from .db import AUTO_INCREMENT_MARGIN, CHANGE_LOG_KEY_CHARS, MIGRATIONS_TABLE, Database, _lit
from .errors import ConfigError, MigrationError


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

    def _change_log_key_type(self) -> str:
        # Not the database's default collation (case- and accent-insensitive as a rule): a
        # shop key column with a binary collation holds `abc` and `ABC` as two rows, and the
        # log must too.
        return f"VARCHAR({CHANGE_LOG_KEY_CHARS}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"

    def create_change_log(self, chg: str) -> None:
        super().create_change_log(chg)
        rows = self.query(
            "SELECT collation_name FROM information_schema.columns WHERE table_schema = DATABASE()"
            " AND table_name = %s AND column_name = 'pk'",
            (chg,),
        )
        if rows and rows[0][0] != "utf8mb4_bin":
            # A log created by an earlier agent, in the default collation: binary can only
            # tell more keys apart, so no row it holds collides.
            self.execute(f"ALTER TABLE {self.q(chg)} MODIFY pk {self._change_log_key_type()} NOT NULL")

    def _pk_expr(self, alias: str, pk: Sequence[str]) -> str:
        return "CONCAT_WS(CHAR(31), " + ", ".join(f"{alias}.{self.q(c)}" for c in pk) + ")"

    def _null_safe_eq(self, a: str, b: str) -> str:
        return f"{a} <=> {b}"

    # Characters of a key column's value as CONCAT_WS writes it (sign and decimal point
    # included); the character types take their declared length.
    _FIXED_WIDTHS = {
        "tinyint": 20, "smallint": 20, "mediumint": 20, "int": 20, "bigint": 20,
        "float": 24, "double": 24, "date": 10, "datetime": 26, "timestamp": 26, "time": 17,
        "year": 4, "uuid": 36, "inet4": 15, "inet6": 39,
    }  # fmt: skip

    def _key_text_widths(self, table: str) -> dict[str, tuple[str, int | None]]:
        rows = self.query(
            "SELECT column_name, data_type, column_type, character_maximum_length, numeric_precision"
            " FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s",
            (table,),
        )
        out: dict[str, tuple[str, int | None]] = {}
        for name, data_type, column_type, char_len, precision in rows:
            data_type = str(data_type).lower()
            width: int | None
            if data_type in ("char", "varchar", "enum", "set", "tinytext", "text", "mediumtext", "longtext"):
                width = int(char_len) if char_len is not None else None
            elif data_type == "decimal":
                width = int(precision) + 2 if precision is not None else None
            else:
                # Binary strings, BIT, JSON, geometry...: not logged as exact text.
                width = self._FIXED_WIDTHS.get(data_type)
            out[name] = (str(column_type), width)
        return out

    def install_capture(self, table: str, trigger: str, chg: str, logical: str, phase: str) -> None:
        pk = self.primary_key(table)
        if not pk:
            raise MigrationError(f"snapshot mode needs a primary key on {table}")
        refusal = self.capture_refusal(table)
        if refusal:
            raise MigrationError(f"snapshot mode cannot capture {table}: {refusal}")

        def log(row: str, op: str) -> str:
            key = self._pk_expr(row, pk)
            # No IGNORE: capture_refusal keeps every key within the log's column, and should
            # one ever not fit, the shop's statement fails (the triggers are created under a
            # strict sql_mode) rather than a shortened key being logged and its write lost.
            # ON DUPLICATE KEY: the key's last operation wins.
            return (
                f"INSERT INTO {self.q(chg)} (tbl, pk, phase, op)"
                f" VALUES ({_lit(logical)}, {key}, {_lit(phase)}, '{op}') ON DUPLICATE KEY UPDATE op = '{op}';"
            )

        moved = " OR ".join(f"NOT (OLD.{self.q(c)} <=> NEW.{self.q(c)})" for c in pk)
        bodies = {
            "INSERT": log("NEW", "u"),
            "UPDATE": f"IF {moved} THEN {log('OLD', 'd')} END IF; {log('NEW', 'u')}",
            "DELETE": log("OLD", "d"),
        }
        # A trigger runs under the sql_mode it was created with, whatever the shop's session
        # uses (WordPress clears the strict modes): strict, so a truncation is an error.
        mode = self.query("SELECT @@SESSION.sql_mode")[0][0]
        self.execute("SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES')")
        try:
            for event, body in bodies.items():
                name = f"{trigger}_{event[0].lower()}"
                self.execute(f"DROP TRIGGER IF EXISTS {self.q(name)}")
                self.execute(
                    f"CREATE TRIGGER {self.q(name)} AFTER {event} ON {self.q(table)} FOR EACH ROW"
                    f" BEGIN IF @molam_agent_migrating IS NULL THEN {body} END IF; END"
                )
        finally:
            self.execute("SET SESSION sql_mode = %s", (mode,))

    def merge_back(self, live: str, kept: str, chg: str, logical: str) -> int:
        # The gap locks _lock_keys relies on exist only under REPEATABLE READ, whatever the
        # server's default isolation level is.
        self.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return super().merge_back(live, kept, chg, logical)

    def _lock_keys(self, live: str, pk: Sequence[str], keys: Sequence[str]) -> None:
        # Under REPEATABLE READ a locking read also locks the gap where an absent key would
        # go: the shop's insert of that key waits for the merge's commit. (A composite key is
        # matched by expression, a scan that locks the whole table: slower, just as safe.)
        where, params = self._key_in("l", pk, live, keys)
        self.query(f"SELECT 1 FROM {self.q(live)} l WHERE {where} FOR UPDATE", params)

    def drop_capture(self, table: str, trigger: str) -> None:
        for suffix in ("i", "u", "d"):
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
