"""PostgreSQL through psycopg 3."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .db import MIGRATIONS_TABLE, Database, _lit, decode_value
from .errors import ConfigError, MigrationError


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
        with self.transaction():
            self.execute(f"ALTER TABLE {MIGRATIONS_TABLE} ADD COLUMN site VARCHAR(16) NOT NULL DEFAULT ''")
            if pkey:
                self.execute(f"ALTER TABLE {MIGRATIONS_TABLE} DROP CONSTRAINT {self.q(pkey[0][0])}")
            self.execute(f"ALTER TABLE {MIGRATIONS_TABLE} ADD PRIMARY KEY (site, plugin, file_name)")

    def set_migrating(self, on: bool) -> None:
        self.execute("SET molam.migrating = " + ("'on'" if on else "'off'"))

    def _pk_expr(self, alias: str, pk: Sequence[str]) -> str:
        # The key as the capture trigger logs it AND as the merge looks it up: one expression
        # for both. Each column's JSON text (a timestamp reads 2024-03-01T10:00:00 there,
        # 2024-03-01 10:00:00 as ::text), which is what ``_key_text_widths`` bounds.
        return (
            "concat_ws(chr(31), " + ", ".join(f"to_jsonb({alias}.{self.q(c)}) #>> '{{}}'" for c in pk) + ")"
        )

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

    def _lock_keys(self, live: str, pk: Sequence[str], keys: Sequence[str]) -> None:
        # PostgreSQL has no lock on a key without a row (no gap locks), and an INSERT ... ON
        # CONFLICT by the shop would land between the phase r check and the upsert. So the
        # table is locked against writes (readers go on) for this batch of at most 500 keys.
        self.execute(f"LOCK TABLE {self.q(live)} IN SHARE ROW EXCLUSIVE MODE")

    # Characters of a key column's value as the capture writes it (``to_jsonb(row) ->> col``:
    # sign, decimal point, years past 9999, " BC" and UTC offsets included); the character
    # types take their declared length.
    _FIXED_WIDTHS = {
        "smallint": 6, "integer": 11, "bigint": 20, "real": 15, "double precision": 25,
        "boolean": 5, "uuid": 36, "date": 16, "timestamp without time zone": 31,
        "timestamp with time zone": 40, "time without time zone": 15, "time with time zone": 24,
        "inet": 43, "cidr": 43,
    }  # fmt: skip

    def _key_text_widths(self, table: str) -> dict[str, tuple[str, int | None]]:
        rows = self.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), c.data_type,"
            " c.character_maximum_length, c.numeric_precision, c.numeric_scale, t.typtype"
            " FROM pg_attribute a JOIN information_schema.columns c"
            " ON c.table_schema = current_schema() AND c.table_name = %s AND c.column_name = a.attname"
            " JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (table, self.q(table)),
        )
        out: dict[str, tuple[str, int | None]] = {}
        for name, typ, data_type, char_len, precision, scale, typtype in rows:
            width: int | None
            if data_type in ("character varying", "character"):
                # No declared length (plain VARCHAR) is as unbounded as TEXT.
                width = int(char_len) if char_len is not None else None
            elif data_type == "numeric":
                width = int(precision) + abs(int(scale or 0)) + 3 if precision is not None else None
            elif typtype == "e":
                width = 63  # an enum label is a name: at most 63 bytes
            else:
                # TEXT, BYTEA (no length limit), intervals, other types: no known bound.
                width = self._FIXED_WIDTHS.get(data_type)
            out[name] = (typ, width)
        return out

    def install_capture(self, table: str, trigger: str, chg: str, logical: str, phase: str) -> None:
        pk = self.primary_key(table)
        if not pk:
            raise MigrationError(f"snapshot mode needs a primary key on {table}")
        refusal = self.capture_refusal(table)
        if refusal:
            raise MigrationError(f"snapshot mode cannot capture {table}: {refusal}")
        fn = self.q(f"{trigger}_fn")
        log = (
            f"INSERT INTO {self.q(chg)} (tbl, pk, phase, op) VALUES (TG_ARGV[0], {{key}}, TG_ARGV[1], '{{op}}')"
            " ON CONFLICT (tbl, phase, pk) DO UPDATE SET op = EXCLUDED.op;"
        )
        self.execute(
            f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $f$"
            " DECLARE k text; ko text; BEGIN"
            " IF coalesce(current_setting('molam.migrating', true), '') = 'on' THEN RETURN NULL; END IF;"
            f" IF TG_OP <> 'DELETE' THEN k := {self._pk_expr('NEW', pk)}; END IF;"
            f" IF TG_OP <> 'INSERT' THEN ko := {self._pk_expr('OLD', pk)}; END IF;"
            # A delete, or an update that moved the row to another key: the old key is gone.
            " IF ko IS NOT NULL AND ko IS DISTINCT FROM k THEN " + log.format(key="ko", op="d") + " END IF;"
            " IF k IS NOT NULL THEN " + log.format(key="k", op="u") + " END IF;"
            " RETURN NULL; END $f$"
        )
        args = ", ".join(_lit(a) for a in (logical, phase))
        self.execute(f"DROP TRIGGER IF EXISTS {self.q(trigger)} ON {self.q(table)}")
        self.execute(
            f"CREATE TRIGGER {self.q(trigger)} AFTER INSERT OR UPDATE OR DELETE ON {self.q(table)}"
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
        with self.transaction():
            self.execute(f"CREATE TABLE {self.q(dst)} (LIKE {self.q(src)} INCLUDING ALL)")
            self.execute(f"INSERT INTO {self.q(dst)} OVERRIDING SYSTEM VALUE SELECT * FROM {self.q(src)}")
            self._sync_sequences(dst, src)

    def restore_snapshot(self, pairs: Sequence[tuple[str, str, str]]) -> None:
        present = self.tables()
        with self.transaction():
            for live, snap, kept in pairs:
                if live in present:
                    self.execute(f"ALTER TABLE {self.q(live)} RENAME TO {self.q(kept)}")
                self.execute(f"ALTER TABLE {self.q(snap)} RENAME TO {self.q(live)}")
                if live in present:
                    self._adopt_sequences(live, kept)

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
