"""Checkout pause of the safe-upgrade agent: maintenance flag up -> down, by orders-table size.

For each size (default 10,000 and 1,000,000 rows of ``wp_molam_orders``), on MariaDB (or
PostgreSQL with ``--engine postgresql``), with the agent's own code path (``Agent._upgrade``):

* **expand upgrade** -- an expand-only release (a nullable column, an option row) installed
  successfully: the pause is the flag's lifetime, from ``maintenance.enter`` to ``leave``.
* **expand rollback** -- ``rollback --to`` the previous version right after (files back,
  option rows back): its pause, and the agent's ``rollback_duration_ms``.
* **failed expand upgrade** -- the same kind of release whose smoke test fails: the pause
  includes the upgrade and its automatic rollback; ``rollback_duration_ms`` is from the
  failure to the smoke test passing on the old version.
* **contract (down files)** and **contract (snapshot mode)** -- a release that updates rows
  and drops a column; with ``migrations/down/`` files, and without (``allow_snapshot``), whose
  copy is taken before the pause and whose rollback renames and merges back.

Targets (issue: the agent keeps every order): expand pause median <= 300 ms at 1,000,000 rows
and within 2x of the 10,000-row figure; rollback median <= 100 ms.

    .venv/bin/python benchmarks/agent_pause.py [--runs 7] [--sizes 10000,1000000] [--engine mysql]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from molam_agent.config import Config, OptionRows  # noqa: E402
from molam_agent.db import connect  # noqa: E402
from molam_agent.engine import Agent  # noqa: E402
from molam_agent.release import Release  # noqa: E402
from tests.agent.builders import (  # noqa: E402  (the agent tests' fixture)
    CONFIG_TABLES,
    MYSQL_SEED,
    PG_SEED,
    build_plugin,
    make_release,
    sign_release,
    signing_public_key,
)

SMOKE = "grep -qx ok health"
ADMIN = {"mysql": "mysql://root@127.0.0.1:3306", "postgresql": "postgresql://postgres@127.0.0.1:5432"}


def expand(i: int) -> dict[str, str]:
    return {
        f"{i:03d}_extra.sql": (
            f"ALTER TABLE wp_molam_orders ADD COLUMN extra_{i} VARCHAR(32) NULL;\n"
            f"INSERT INTO wp_options (option_name, option_value) VALUES ('molam_flag_{i}', '1');\n"
        )
    }


def contract(i: int, downs: bool) -> dict[str, str]:
    out = {
        f"{i:03d}_contract.sql": (
            f"ALTER TABLE wp_molam_orders ADD COLUMN c_{i} INT NULL;\n"
            f"UPDATE wp_molam_settings SET value = '{i}' WHERE name = 'schema';\n"
            f"ALTER TABLE wp_molam_orders DROP COLUMN c_{i};\n"
        )
    }
    if downs:
        out[f"down/{i:03d}_contract.sql"] = (
            "UPDATE wp_molam_settings SET value = '3' WHERE name = 'schema';\n"
        )
    return out


def stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values):7.1f}  min {min(values):7.1f}  max {max(values):7.1f}"


class Bench:
    def __init__(self, engine: str, rows: int, work: Path) -> None:
        self.engine = engine
        self.rows = rows
        self.work = work
        self.admin = connect(f"{ADMIN[engine]}/{'mysql' if engine == 'mysql' else 'postgres'}")
        self.dbname = f"molam_pause_{uuid.uuid4().hex[:8]}"
        self.admin.execute(f"CREATE DATABASE {self.dbname}")
        self.url = f"{ADMIN[engine]}/{self.dbname}"
        with connect(self.url) as db:
            seed = (MYSQL_SEED if engine == "mysql" else PG_SEED).format(rows=rows)
            if engine == "mysql":
                db._run_script(seed)
            else:
                db.execute(seed)
        self.plugin_dir = work / "wp-content" / "plugins" / "molam-form"
        build_plugin(self.plugin_dir, "3.9.0")
        self.base = build_plugin(work / "src" / "molam-form", "0", seed=2)
        self.n = 0

    def config(self, allow_snapshot: bool = False) -> Config:
        return Config(
            api_url="http://127.0.0.1:9/api/plugins/",  # nothing listens: reports stay queued
            token="bench",
            merchant_id=str(uuid.uuid4()),
            plugin_name="woocommerce",
            plugin_dir=self.plugin_dir,
            version_from="wp-header:molam-form.php",
            state_dir=self.work / "state",
            backup_key_file=self.work / "backup.key",
            db_url=self.url,
            db_tables=tuple(CONFIG_TABLES),
            db_options=OptionRows("wp_options", "option_name LIKE 'molam\\_%'"),
            db_allow_snapshot=allow_snapshot,
            smoke_command=SMOKE,
            api_timeout_s=0.5,
            public_key=signing_public_key(),
        )

    def release(self, migrations: dict[str, str], health: str = "ok") -> Release:
        self.n += 1
        version = f"4.{self.n}.0"
        path = self.work / f"molam-form-{version}.zip"
        sha = make_release(path, self.base, version, migrations=migrations, health=health)
        return Release(version, path.as_uri(), sha, sign_release(path))

    def upgrade(self, rel: Release, allow_snapshot: bool = False) -> tuple[Agent, dict]:
        agent = Agent(self.config(allow_snapshot))
        agent.outbox.attempts = 1
        with agent.locked():
            out = agent._upgrade(rel, agent.installed_version(), time.monotonic())
        return agent, out

    def rollback(self, version: str) -> tuple[Agent, dict]:
        agent = Agent(self.config())
        agent.outbox.attempts = 1
        with agent.locked():
            out = agent.rollback_to(version)
        return agent, out

    def close(self) -> None:
        self.admin.execute(
            f"DROP DATABASE IF EXISTS {self.dbname}"
            + (" WITH (FORCE)" if self.engine == "postgresql" else "")
        )
        self.admin.close()


def measure(
    engine: str, rows: int, runs: int, contract_runs: int, workdir: str | None
) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="molam-pause-", dir=workdir))
    b = Bench(engine, rows, work)
    res: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        if value is not None:
            res.setdefault(name, []).append(float(value))

    try:
        for i in range(runs):
            before = Agent(b.config()).installed_version()
            agent, out = b.upgrade(b.release(expand(b.n + 1)))
            assert out["status"] == "success", out
            add("expand upgrade pause", agent.maint.pause_ms)
            agent, out = b.rollback(before)
            assert out["rollback_status"] == "success", out
            add("expand rollback --to pause", agent.maint.pause_ms)
            add("expand rollback --to duration", out["rollback_duration_ms"])
            agent, out = b.upgrade(b.release(expand(b.n + 1), health="broken"))
            assert out["rollback_status"] == "success", out
            add("failed expand upgrade pause (incl. rollback)", agent.maint.pause_ms)
            add("automatic rollback duration", out["rollback_duration_ms"])
            print(
                f"  {rows:>9,} rows run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res.items()),
                flush=True,
            )
        for i in range(contract_runs):
            agent, out = b.upgrade(b.release(contract(b.n + 1, downs=True), health="broken"))
            assert out["rollback_status"] == "success", out
            add("contract (down files) failed upgrade pause", agent.maint.pause_ms)
            add("contract (down files) rollback duration", out["rollback_duration_ms"])
            agent, out = b.upgrade(
                b.release(contract(b.n + 1, downs=False), health="broken"), allow_snapshot=True
            )
            assert out["rollback_status"] == "success", out
            add("contract (snapshot) failed upgrade pause", agent.maint.pause_ms)
            add("contract (snapshot) rollback duration", out["rollback_duration_ms"])
            with connect(b.url) as db:  # reset outside the measurement: merged kept copies
                db.drop_tables(t for t in db.tables() if "_kept_" in t)
            print(f"  {rows:>9,} rows contract run {i + 1} done", flush=True)
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--contract-runs", type=int, default=3)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--engine", default="mysql", choices=sorted(ADMIN))
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # expected failures are the point
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {
        rows: measure(args.engine, rows, args.runs, args.contract_runs, args.workdir) for rows in sizes
    }
    print()
    print(f"checkout pause on {args.engine} (ms), {args.runs} runs (contract: {args.contract_runs})")
    for name in results[sizes[0]]:
        print(name)
        for rows in sizes:
            print(f"  {rows:>9,} rows: {stats(results[rows].get(name, []))}")
    small, large = results[sizes[0]], results[sizes[-1]]
    up_s = statistics.median(small["expand upgrade pause"])
    up_l = statistics.median(large["expand upgrade pause"])
    rb_l = statistics.median(large["automatic rollback duration"])
    ok = up_l <= 300 and up_l <= 2 * max(up_s, 1) and rb_l <= 100
    print(
        f"targets: expand pause {up_l:.1f} ms <= 300 and <= 2x {up_s:.1f} ms; "
        f"rollback {rb_l:.1f} ms <= 100: {'MET' if ok else 'NOT MET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
