"""Migration policy: classify every statement of a release's migrations before checkout pauses.

*expand* statements only add: ``CREATE TABLE``, a non-unique ``CREATE INDEX``, ``ALTER TABLE …
ADD [COLUMN]`` of a column that is nullable or has a default (and ``ADD INDEX``/``ADD KEY``), and
plain ``INSERT`` into the shared options table (the plugin's own option rows). Old code ignores
what they add, so a rollback leaves them in place and no live row is ever touched.

*contract* is everything else: ``DROP``, ``RENAME``, ``MODIFY``/``CHANGE``/``ALTER COLUMN``,
``UPDATE``, ``DELETE``, ``TRUNCATE``, ``REPLACE``, upserts, ``INSERT`` into the plugin's tables,
unique indexes and constraints, ``NOT NULL`` columns without a default, and any statement the
classifier cannot read.

*refused*: a statement naming a table outside the plugin's configured set (``database.tables``,
whose entries may end with ``*`` to match a prefix, plus the options table for inserts), a
schema-qualified name, or a schema change of the shared options table.

The same rules are implemented by the PHP plugin; both are tested against
``tests/fixtures/migration_policy_cases.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

EXPAND = "expand"
CONTRACT = "contract"
REFUSED = "refused"

_IDENT = r"(?:`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|\[[^\]]+\]|[A-Za-z0-9_$.]+)"


@dataclass
class Statement:
    """One classified statement."""

    sql: str
    cls: str
    kind: str = ""
    table: str | None = None
    tables: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    index: str | None = None
    reason: str = ""


# ----------------------------------------------------------------------------- splitting --
def split_statements(sql: str) -> list[str]:
    """Split a script on top-level ``;``, honouring quotes, comments and dollar quotes.

    Comments are dropped from the returned statements; empty statements are skipped.
    """
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c == "-" and nxt == "-" or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j
            buf.append(" ")
            continue
        if c == "/" and nxt == "*":
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            buf.append(" ")
            continue
        if c in ("'", '"', "`"):
            j = i + 1
            while j < n:
                if sql[j] == "\\" and c == "'":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            buf.append(sql[i : j + 1])
            i = j + 1
            continue
        if c == "$":
            m = re.match(r"\$[A-Za-z_]*\$", sql[i:])
            if m:
                tag = m.group(0)
                j = sql.find(tag, i + len(tag))
                j = n if j < 0 else j + len(tag)
                buf.append(sql[i:j])
                i = j
                continue
        if c == ";":
            stmt = "".join(buf).strip()
            if stmt:
                out.append(stmt)
            buf = []
            i += 1
            continue
        buf.append(c)
        i += 1
    stmt = "".join(buf).strip()
    if stmt:
        out.append(stmt)
    return out


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts, depth, cur, quote = [], 0, [], ""
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in ("'", '"', "`"):
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def unquote(name: str) -> str:
    """A bare identifier from its quoted form."""
    if len(name) >= 2 and name[0] in '`"[' and name[-1] in '`"]':
        inner = name[1:-1]
        return inner.replace("``", "`").replace('""', '"')
    return name


def table_allowed(name: str, tables: Iterable[str]) -> bool:
    """True when ``name`` is one of ``tables`` (an entry ending with ``*`` matches a prefix)."""
    for t in tables:
        if t.endswith("*") and name.startswith(t[:-1]) or name == t:
            return True
    return False


def expand_tables(patterns: Iterable[str], present: Iterable[str]) -> list[str]:
    """The configured tables that exist: exact names, and every present match of a pattern."""
    present = sorted(present)
    out: list[str] = []
    for p in patterns:
        if p.endswith("*"):
            out += [t for t in present if t.startswith(p[:-1]) and t not in out]
        elif p in present and p not in out:
            out.append(p)
    return out


# ------------------------------------------------------------------------- classification --
_REF_RE = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|REFERENCES|LIKE)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:ONLY\s+)?("
    + _IDENT
    + ")",
    re.I,
)
_KEYWORDS = {"SELECT", "SET", "VALUES", "WHERE", "DEFAULT", "NULL", "ALL", "DISTINCT", "LATERAL"}


def referenced_tables(stmt: str) -> list[str]:
    """Names that appear where a table name goes (best effort, for the refusal rule)."""
    body = re.sub(r"'(?:[^'\\]|\\.|'')*'", "''", stmt)
    body = re.sub(r"\b(?:DUPLICATE\s+KEY|DO)\s+UPDATE\b", " ", body, flags=re.I)
    names = []
    for m in _REF_RE.finditer(body):
        name = m.group(1)
        if name.upper() in _KEYWORDS or name.startswith("("):
            continue
        names.append(name)
    # RENAME TABLE a TO b, c TO d  /  ALTER TABLE a RENAME [TO|AS] b
    if re.match(r"RENAME\s+TABLE\b", body, re.I):
        names += re.findall(r"(?:,|\bTO)\s+(" + _IDENT + ")", body, re.I)
    names += re.findall(r"\bRENAME\s+(?:TO|AS)\s+(" + _IDENT + ")", body, re.I)
    return names


_COLDEF_BAD = re.compile(
    r"\b(PRIMARY\s+KEY|UNIQUE|AUTO_INCREMENT|REFERENCES|CHECK|GENERATED|SERIAL)\b|\bAS\s*\(", re.I
)


def _column_is_expand(coldef: str) -> tuple[bool, str]:
    text = re.sub(r"'(?:[^'\\]|\\.|'')*'", "''", coldef)
    if _COLDEF_BAD.search(text) or re.search(r"\bSERIAL\b", text, re.I):
        return False, "column with a key, constraint or generated value"
    if re.search(r"\bNOT\s+NULL\b", text, re.I) and not re.search(r"\bDEFAULT\b", text, re.I):
        return False, "NOT NULL column without a default"
    return True, ""


def classify_statement(stmt: str, tables: Sequence[str], options_table: str | None = None) -> Statement:
    """Classify one statement (comments already removed)."""
    s = " ".join(stmt.split())
    up = s.upper()
    allowed = list(tables)

    def refuse(reason: str) -> Statement:
        return Statement(stmt, REFUSED, reason=reason)

    def contract(reason: str, kind: str = "", table: str | None = None) -> Statement:
        return Statement(stmt, CONTRACT, kind=kind, table=table, reason=reason)

    # Every table the statement names must be the plugin's.
    names = [unquote(n) for n in referenced_tables(s)]
    m_idx = re.match(
        r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?("
        + _IDENT
        + r")\s+ON\s+(?:ONLY\s+)?("
        + _IDENT
        + ")",
        s,
        re.I,
    )
    if m_idx:
        names.append(unquote(m_idx.group(2)))
    for name in names:
        if "." in name:
            return refuse(f"schema-qualified table name {name}")
        if not (table_allowed(name, allowed) or name == options_table):
            return refuse(f"table {name} is not one of the plugin's configured tables")

    m = re.match(r"CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(" + _IDENT + r")\s*(\(|LIKE\b)", s, re.I)
    if m:
        name = unquote(m.group(2))
        if name == options_table:
            return refuse("the options table is shared: its schema is not the plugin's")
        return Statement(stmt, EXPAND, kind="create_table", table=name, tables=[name])
    if up.startswith("CREATE TABLE") and re.search(r"\bAS\s+SELECT\b", up):
        return contract("CREATE TABLE … AS SELECT copies rows")
    if m_idx:
        table = unquote(m_idx.group(2))
        if table == options_table:
            return refuse("the options table is shared: its schema is not the plugin's")
        if up.startswith("CREATE UNIQUE"):
            return contract("a unique index restricts writes old code may make", "create_index", table)
        return Statement(
            stmt, EXPAND, kind="create_index", table=table, tables=[table], index=unquote(m_idx.group(1))
        )
    m = re.match(r"ALTER\s+TABLE\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?(" + _IDENT + r")\s+(.*)$", s, re.I)
    if m:
        table = unquote(m.group(1))
        if table == options_table:
            return refuse("the options table is shared: its schema is not the plugin's")
        columns: list[str] = []
        index = None
        for action in _split_top(m.group(2)):
            a = re.match(
                r"ADD\s+(?:INDEX|KEY)\s+(?:IF\s+NOT\s+EXISTS\s+)?(" + _IDENT + r")?\s*\(", action, re.I
            )
            if a:
                index = unquote(a.group(1)) if a.group(1) else index
                continue
            if re.match(r"ADD\s+(UNIQUE|PRIMARY|CONSTRAINT|FOREIGN|FULLTEXT|SPATIAL|CHECK)\b", action, re.I):
                return contract("a key or constraint restricts writes old code may make", "alter", table)
            c = re.match(
                r"ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(" + _IDENT + r")\s+(.+)$", action, re.I
            )
            if not c or c.group(1).upper() in ("COLUMN", "(", "PARTITION"):
                return contract(f"ALTER TABLE action '{action[:40]}' is not additive", "alter", table)
            ok, why = _column_is_expand(c.group(2))
            if not ok:
                return contract(why, "alter", table)
            columns.append(unquote(c.group(1)))
        if not columns and index is None:
            return contract("ALTER TABLE without an additive action", "alter", table)
        kind = "add_column" if columns else "add_index"
        return Statement(stmt, EXPAND, kind=kind, table=table, tables=[table], columns=columns, index=index)
    m = re.match(r"INSERT\s+(?:IGNORE\s+)?INTO\s+(" + _IDENT + r")", s, re.I)
    if m:
        table = unquote(m.group(1))
        if re.search(r"\bON\s+DUPLICATE\s+KEY\b|\bDO\s+UPDATE\b|\bSELECT\b", up):
            return contract("an upsert or INSERT … SELECT", "insert", table)
        if table != options_table:
            return contract(
                "inserting rows into the plugin's tables changes what old code reads", "insert", table
            )
        return Statement(stmt, EXPAND, kind="insert_option", table=table, tables=[table])
    kind = up.split(" ", 1)[0].lower()
    return contract(f"{kind.upper()} statement", kind)


def classify_script(sql: str, tables: Sequence[str], options_table: str | None = None) -> list[Statement]:
    """Classify every statement of a migration file."""
    return [classify_statement(s, tables, options_table) for s in split_statements(sql)]


def script_class(statements: Sequence[Statement]) -> str:
    """The class of a whole file or release: refused > contract > expand."""
    classes = {st.cls for st in statements}
    if REFUSED in classes:
        return REFUSED
    if CONTRACT in classes:
        return CONTRACT
    return EXPAND
