"""Snapshot mode takes only tables whose every primary key its change log holds exactly.

The capture triggers log each key the shop writes during the window in a column of 255
characters. A longer key would be logged cut short (MariaDB) and its write never merged back
by a rollback, or would fail the shop's write (PostgreSQL): such a table is refused snapshot
mode at staging, before anything is paused or copied, and the release must ship down files.
"""

from __future__ import annotations

import pytest

from molam_agent.db import CHANGE_LOG_KEY_CHARS, connect

from .conftest import CONFIG_TABLES, shop_writes_in_window

TOKENS = "wp_molam_tokens"
# Contract (an UPDATE of the plugin's rows) without a down file: snapshot mode.
TOKENS_MIGRATIONS = {"001_tokens.sql": f"UPDATE {TOKENS} SET note = 'v4';\n"}


def _tokens_table(host, key_type: str) -> None:
    with connect(host.db_url) as db:
        db.execute(f"CREATE TABLE {TOKENS} (token {key_type} NOT NULL PRIMARY KEY, note VARCHAR(16))")
        db.execute(f"INSERT INTO {TOKENS} (token, note) VALUES ('t1', 'v3')")


def _offer_tokens_release(host, small_release) -> None:
    zip_path, _ = small_release("4.0.0", migrations=TOKENS_MIGRATIONS)
    host.publish(zip_path, "4.0.0")
    host.write_config(database={"allow_snapshot": True, "tables": [*CONFIG_TABLES, TOKENS]})


def _capture_artifacts(db) -> list[str]:
    tables = [t for t in db.tables() if t.startswith("molam_snap_") or "_kept_" in t]
    if db.engine == "mysql":
        triggers = [r[0] for r in db.query("SELECT trigger_name FROM information_schema.triggers")]
    else:
        triggers = [r[0] for r in db.query("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")]
    return tables + [t for t in triggers if t.startswith("molam_trg_")]


def test_a_300_character_primary_key_is_refused_snapshot_mode_before_anything_changes(
    sql_host, small_release
):
    host = sql_host
    _tokens_table(host, "VARCHAR(300)")
    _offer_tokens_release(host, small_release)

    rc, out = host.run("upgrade")

    assert rc == 1 and out["status"] == "failed", out
    assert out["rollback_status"] == "not_required", out
    assert f"{TOKENS}.token" in out["error"] and "255" in out["error"], out["error"]
    assert "migrations/down/" in out["error"] and "001_tokens.sql" in out["error"], out["error"]
    assert host.installed() == "3.9.0"
    assert not host.cp.state.posts("rollback/initiate")  # refused before any pause
    with connect(host.db_url) as db:
        assert db.query(f"SELECT token, note FROM {TOKENS}") == [("t1", "v3")]
        assert not _capture_artifacts(db)
        assert "molam_agent_migrations" not in db.tables() or not db.query(
            "SELECT 1 FROM molam_agent_migrations WHERE file_name = '001_tokens.sql'"
        )


def test_the_dry_run_reports_the_same_refusal(sql_host, small_release):
    host = sql_host
    _tokens_table(host, "VARCHAR(300)")
    _offer_tokens_release(host, small_release)

    rc, out = host.run("upgrade", "--dry-run")

    assert rc == 1 and out["dry_run"] is True, out
    assert f"{TOKENS}.token" in out["error"], out


@pytest.mark.parametrize(
    "key_types, named",
    [
        (["TEXT"], f"{TOKENS}.k0"),
        (["VARCHAR(200)", "VARCHAR(60)"], "(k0, k1)"),  # 200 + 1 separator + 60 > 255
    ],
)
def test_keys_the_change_log_cannot_hold_are_refused(sql_host, key_types, named):
    host = sql_host
    cols = [f"k{i}" for i in range(len(key_types))]
    with connect(host.db_url) as db:
        text_key = db.engine == "mysql" and key_types == ["TEXT"]
        defs = ", ".join(f"{c} {t} NOT NULL" for c, t in zip(cols, key_types, strict=True))
        # MariaDB indexes a TEXT key by a prefix only; its values are whole, and long, all the same.
        pk = "k0(100)" if text_key else ", ".join(cols)
        db.execute(f"CREATE TABLE {TOKENS} ({defs}, note VARCHAR(16), PRIMARY KEY ({pk}))")

        refusal = db.capture_refusal(TOKENS)

        assert refusal is not None
        assert named in refusal, refusal
        assert db.capture_refusal("wp_molam_orders") is None
        assert db.capture_refusal("wp_molam_settings") is None


def test_a_window_write_to_a_key_of_exactly_255_characters_is_merged_back(sql_host, small_release):
    host = sql_host
    _tokens_table(host, f"VARCHAR({CHANGE_LOG_KEY_CHARS})")
    longest = "k" * (CHANGE_LOG_KEY_CHARS - 1) + "z"
    shop_writes_in_window(host, [f"INSERT INTO {TOKENS} (token, note) VALUES ('{longest}', 'window')"])
    _offer_tokens_release(host, small_release)

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "success", (out.get("error"), out.get("_stderr", "")[-1500:])
    with connect(host.db_url) as db:
        assert sorted(db.query(f"SELECT token, note FROM {TOKENS}")) == [(longest, "window"), ("t1", "v3")]


def test_window_writes_to_keys_differing_only_in_case_are_both_merged_back(mysql_host, small_release):
    # A binary collation tells `abc` from `ABC`; the change log must as well, or the second
    # write shares the first one's log row and is never merged back.
    host = mysql_host
    _tokens_table(host, "VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    shop_writes_in_window(
        host,
        [
            f"INSERT INTO {TOKENS} (token, note) VALUES ('abc', 'lower')",
            f"INSERT INTO {TOKENS} (token, note) VALUES ('ABC', 'upper')",
        ],
    )
    _offer_tokens_release(host, small_release)

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "success", (out.get("error"), out.get("_stderr", "")[-1500:])
    with connect(host.db_url) as db:
        assert sorted(db.query(f"SELECT token, note FROM {TOKENS}")) == [
            ("ABC", "upper"),
            ("abc", "lower"),
            ("t1", "v3"),
        ]


def test_a_key_deleted_then_written_again_in_another_case_is_merged_back(mysql_host, small_release):
    # A case-insensitive key: `abc` deleted, then `ABC` inserted is one row the shop kept. The
    # log holds the two spellings apart; the delete must not take the row the insert wrote.
    host = mysql_host
    _tokens_table(host, "VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    with connect(host.db_url) as db:
        db.execute(f"INSERT INTO {TOKENS} (token, note) VALUES ('abc', 'before')")
    shop_writes_in_window(
        host,
        [
            f"DELETE FROM {TOKENS} WHERE token = 'abc'",
            f"INSERT INTO {TOKENS} (token, note) VALUES ('ABC', 'again')",
        ],
    )
    _offer_tokens_release(host, small_release)

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "success", (out.get("error"), out.get("_stderr", "")[-1500:])
    with connect(host.db_url) as db:
        rows = dict(db.query(f"SELECT LOWER(token), note FROM {TOKENS}"))
        assert rows == {"abc": "again", "t1": "v3"}


def test_a_window_write_to_a_composite_key_with_a_timestamp_is_merged_back(sql_host, small_release):
    # PostgreSQL logs a timestamp in its JSON form (2024-03-01T10:00:00), not its ::text one:
    # the merge must look the key up in that same form.
    host = sql_host
    at = "TIMESTAMP" if host.engine == "postgresql" else "DATETIME"
    with connect(host.db_url) as db:
        db.execute(
            f"CREATE TABLE {TOKENS} (token VARCHAR(32) NOT NULL, at {at} NOT NULL, note VARCHAR(16),"
            " PRIMARY KEY (token, at))"
        )
        db.execute(f"INSERT INTO {TOKENS} (token, at, note) VALUES ('t1', '2024-01-01 00:00:00', 'v3')")
        assert db.capture_refusal(TOKENS) is None
    shop_writes_in_window(
        host,
        [
            f"INSERT INTO {TOKENS} (token, at, note) VALUES ('t2', '2024-03-01 10:00:00', 'window')",
            f"UPDATE {TOKENS} SET note = 'touched' WHERE token = 't1'",
        ],
    )
    _offer_tokens_release(host, small_release)

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "success", (out.get("error"), out.get("_stderr", "")[-1500:])
    with connect(host.db_url) as db:
        rows = sorted((t, str(a), n) for t, a, n in db.query(f"SELECT token, at, note FROM {TOKENS}"))
        assert rows == [("t1", "2024-01-01 00:00:00", "touched"), ("t2", "2024-03-01 10:00:00", "window")]
