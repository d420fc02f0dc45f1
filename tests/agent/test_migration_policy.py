"""The migration classifier against the shared vectors (the PHP plugin reads the same file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from molam_agent.policy import CONTRACT, EXPAND, classify_script, script_class, split_statements

CASES = json.loads((Path(__file__).parents[1] / "fixtures" / "migration_policy_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["sql"][:60] for c in CASES])
def test_statement_is_classified_as_the_shared_vector_says(case):
    statements = classify_script(case["sql"], case["tables"], case.get("options_table"))

    assert statements, "no statement found"
    assert script_class(statements) == case["class"], [(s.cls, s.reason) for s in statements]


def test_vectors_cover_every_class():
    assert {c["class"] for c in CASES} == {"expand", "contract", "refused"}


def test_splitting_honours_quotes_comments_and_dollar_quotes():
    sql = (
        "INSERT INTO wp_options (option_name, option_value) VALUES ('molam_a', 'x;y'); -- c;\n"
        "/* ; */ CREATE TABLE t (a INT);\n"
        "DO $$ BEGIN PERFORM 1; END $$;"
    )

    parts = split_statements(sql)

    assert len(parts) == 3
    assert parts[0].endswith("'x;y')")
    assert parts[2].startswith("DO $$")


def test_one_contract_statement_makes_the_file_contract():
    sql = "CREATE TABLE wp_molam_refunds (id INT);\nUPDATE wp_molam_settings SET value = '4';\n"

    statements = classify_script(sql, ["wp_molam_refunds", "wp_molam_settings"], "wp_options")

    assert [s.cls for s in statements] == [EXPAND, CONTRACT]
    assert script_class(statements) == CONTRACT
