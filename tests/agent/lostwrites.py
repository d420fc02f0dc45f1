"""The lost-write harness: shop writers running while the agent upgrades, fails, is killed.

Used by ``test_lost_writes.py`` and by ``benchmarks/agent_soak.py`` (200 randomized runs).

Writers are separate processes, each with its own connection in autocommit, like PHP
requests: payment webhooks updating existing orders, checkouts inserting new ones, merchants
deleting orders and sometimes putting one back under the same primary key. Some
honour the maintenance flag (``is_active`` before every write), some do not. Each writer owns
its rows (seed orders by parity, plus the ones it inserted), so "the last value it saw
committed" is well defined. One writer also creates another plugin's tables now and then.

At the end: every write a writer saw committed is in the live table with its last value, and
every row it saw deleted (and not put back) is absent;
every table that existed or was created by someone else still exists; the plugin's files and
the orders table's columns are wholly the old version or wholly the new one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molam_agent.db import connect
from molam_agent.fsutil import tree_fingerprint
from molam_agent.maintenance import is_active
from molam_agent.release import extract_zip

from .builders import RELEASES

STATUSES = ["pending", "paid", "refunded", "failed", "shipped", "disputed"]
OLD_COLUMNS = ["id", "order_ref", "amount", "currency", "status", "created_at", "payload"]
NEW_COLUMNS = {
    "expand": OLD_COLUMNS + ["fee_amount"],
    "down": OLD_COLUMNS + ["fee_amount"],
    "snapshot": [c for c in OLD_COLUMNS if c != "payload"] + ["fee_amount"],
}
# A smoke test that takes a moment, so the writers really write inside the window.
SLOW_SMOKE = (
    f'{sys.executable} -c "import os, sys, time; time.sleep(0.3); '
    "d = os.environ['MOLAM_PLUGIN_DIR']; "
    "sys.exit(0 if open(os.path.join(d, 'health')).read().strip() == 'ok' else 1)\""
)


def _conn_lost(db: Any, exc: BaseException) -> bool:
    """True when the write's fate is unknown (the connection dropped mid-statement)."""
    code = exc.args[0] if exc.args else None
    if code in (2006, 2013, 2055):
        return True
    return bool(getattr(db.conn, "closed", False)) if db is not None and db.conn is not None else True


def writer(
    url: str, plugin_dir: str, honour: bool, parity: int, prefix: str, seed: int, stop: Any, out: Any
) -> None:
    """One shop process: write until ``stop`` is set, then send (expected, uncertain, tables)."""
    rng = random.Random(seed)
    expected: dict[str, str | None] = {}  # order_ref -> last status committed, None: deleted
    deleted: dict[str, int] = {}  # order_ref -> id, for a later re-insert under the same key
    uncertain: set[str] = set()
    tables: list[str] = []
    mine = [f"MF-{i}" for i in range(1, 61) if i % 2 == parity]
    db = None
    n = 0
    while not stop.is_set():
        if honour and is_active(Path(plugin_dir)):
            time.sleep(0.02)
            continue
        ref = ""
        try:
            if db is None:
                db = connect(url, lock_timeout_s=10)
            p = db.ph
            roll = rng.random()
            status = rng.choice(STATUSES)
            if roll < 0.40:
                ref = f"{prefix}-{n}"
                n += 1
                db.execute(
                    "INSERT INTO wp_molam_orders (order_ref, amount, currency, status, created_at)"
                    f" VALUES ({p}, {p}, 'XOF', {p}, '2024-05-01 12:00:00')",
                    (ref, rng.randint(100, 99999) / 100, status),
                )
                expected[ref] = status
                mine.append(ref)
            elif roll < 0.47:
                # A merchant deletes an order (a test order, a cancelled one): it must stay gone.
                # Half the time one of the seed orders, which every copy of the table holds.
                ref = rng.choice(mine[:30] if rng.random() < 0.5 else mine)
                row = db.query(f"SELECT id FROM wp_molam_orders WHERE order_ref = {p}", (ref,))
                if row:
                    cur = db.conn.cursor()
                    try:
                        cur.execute(f"DELETE FROM wp_molam_orders WHERE id = {p}", (row[0][0],))
                        if cur.rowcount == 1:
                            expected[ref] = None
                            deleted[ref] = int(row[0][0])
                    finally:
                        cur.close()
            elif roll < 0.52 and deleted:
                # ... and sometimes puts it back under the same primary key, with new content.
                ref = rng.choice(sorted(deleted))
                db.execute(
                    "INSERT INTO wp_molam_orders (id, order_ref, amount, currency, status, created_at)"
                    f" VALUES ({p}, {p}, {p}, 'XOF', {p}, '2024-05-02 12:00:00')",
                    (deleted.pop(ref), ref, rng.randint(100, 99999) / 100, status),
                )
                expected[ref] = status
            elif roll < 0.98 or honour:
                ref = rng.choice(mine)
                cur = db.conn.cursor()
                try:
                    cur.execute(
                        f"UPDATE wp_molam_orders SET status = {p} WHERE order_ref = {p}", (status, ref)
                    )
                    if cur.rowcount == 1:
                        expected[ref] = status
                finally:
                    cur.close()
            else:
                name = f"wp_other_{prefix.lower().replace('-', '_')}_{len(tables)}"
                db.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY)")
                tables.append(name)
        except Exception as exc:  # noqa: BLE001 - the shop sees an error; the write did not happen
            if ref and _conn_lost(db, exc):
                uncertain.add(ref)
            try:
                if db is not None:
                    db.close()
            except Exception:  # noqa: BLE001
                pass
            db = None
            time.sleep(0.02)
        time.sleep(rng.uniform(0.002, 0.012))
    if db is not None:
        db.close()
    out.put((expected, sorted(uncertain), tables))


@dataclass
class Outcome:
    """What one scenario ended with."""

    lost: list[str] = field(default_factory=list)
    writes: int = 0
    uncertain: int = 0
    version: str = ""
    problems: list[str] = field(default_factory=list)


class Writers:
    """Start, stop and collect the shop's writer processes."""

    def __init__(self, url: str, plugin_dir: Path, seed: int) -> None:
        ctx = mp.get_context("spawn")
        self.stop = ctx.Event()
        self.out = ctx.Queue()
        specs = [(True, 0, "H0"), (False, 1, "N1")]
        self.procs = [
            ctx.Process(
                target=writer,
                args=(
                    url,
                    str(plugin_dir),
                    honour,
                    parity,
                    f"{pre}-{seed}",
                    seed * 10 + i,
                    self.stop,
                    self.out,
                ),
                daemon=True,
            )
            for i, (honour, parity, pre) in enumerate(specs)
        ]

    def __enter__(self) -> Writers:
        for p in self.procs:
            p.start()
        return self

    def collect(self) -> tuple[dict[str, str | None], set[str], list[str]]:
        self.stop.set()
        expected: dict[str, str | None] = {}
        uncertain: set[str] = set()
        tables: list[str] = []
        for _ in self.procs:
            e, u, t = self.out.get(timeout=60)
            expected.update(e)
            uncertain |= set(u)
            tables += t
        for p in self.procs:
            p.join(10)
        return expected, uncertain, tables

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()


def agent_cmd(host: Any, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "molam_agent",
        args[0],
        "--config",
        str(host.config_path),
        "--json",
        *args[1:],
    ]


def agent_env(host: Any) -> dict[str, str]:
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo), **host.extra_env)
    env.pop("MOLAM_AGENT_FAULT", None)
    return env


def run_scenario(
    host: Any, release_base: Path, mode: str, scenario: str, seed: int, ttl_s: int = 3
) -> Outcome:
    """One upgrade with writers running. ``scenario``: fail | success | kill."""
    from .builders import make_release

    rng = random.Random(seed)
    health = (
        "ok" if scenario == "success" else ("broken" if scenario == "fail" else rng.choice(["ok", "broken"]))
    )
    zip_path = host.tmp / f"molam-form-4.0.0-{seed}.zip"
    make_release(zip_path, release_base, "4.0.0", migrations=RELEASES[mode], health=health)
    new_tree_dir = host.tmp / f"expected-{seed}"
    extract_zip(zip_path, new_tree_dir, 1 << 30)
    new_tree = tree_fingerprint(new_tree_dir)
    old_tree = host.fingerprint()
    host.publish(zip_path, "4.0.0")
    host.smoke = {"command": SLOW_SMOKE, "timeout_s": 30}
    host.write_config(database={"allow_snapshot": mode == "snapshot"}, maintenance={"ttl_s": ttl_s})
    with connect(host.db_url) as db:
        tables_before = {t for t in db.tables() if not t.startswith("molam_")}

    out = Outcome()
    with Writers(host.db_url, host.plugin_dir, seed) as writers:
        time.sleep(0.3)
        env = agent_env(host)
        if scenario == "kill":
            proc = subprocess.Popen(
                agent_cmd(host, "upgrade"),
                env=env,
                cwd=str(host.tmp),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.05, 2.5))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(60)
            time.sleep(ttl_s + 0.5)  # the flag expires (unless pinned); the shop writes on
            done = subprocess.run(
                agent_cmd(host, "recover"),
                env=env,
                cwd=str(host.tmp),
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode not in (0, 1):
                out.problems.append(
                    f"recover exited {done.returncode}: {done.stdout[-600:]} {done.stderr[-600:]}"
                )
        else:
            rc = subprocess.run(
                agent_cmd(host, "upgrade"), env=env, cwd=str(host.tmp), capture_output=True, timeout=300
            ).returncode
            want = 0 if scenario == "success" else 1
            if rc != want:
                out.problems.append(f"upgrade exited {rc}, expected {want}")
        time.sleep(0.3)
        expected, uncertain, foreign = writers.collect()

    out.writes = len(expected)
    out.uncertain = len(uncertain)
    with connect(host.db_url) as db:
        p = db.ph
        live: dict[str, str] = {}
        refs = sorted(expected)
        for i in range(0, len(refs), 500):
            chunk = refs[i : i + 500]
            marks = ", ".join([p] * len(chunk))
            live.update(
                db.query(f"SELECT order_ref, status FROM wp_molam_orders WHERE order_ref IN ({marks})", chunk)
            )
        for ref, status in expected.items():
            if ref not in uncertain and live.get(ref) != status:
                want = "deleted" if status is None else status
                out.lost.append(f"{ref}: expected {want}, live {live.get(ref, 'deleted')}")
        present = db.tables()
        for table in sorted((tables_before | set(foreign)) - present):
            out.problems.append(f"table {table} was dropped")
        cols = db.columns("wp_molam_orders")
    out.version = host.installed()
    if out.version == "3.9.0":
        if host.fingerprint() != old_tree:
            out.problems.append("version 3.9.0 but the files are not the old tree")
        allowed = [OLD_COLUMNS, NEW_COLUMNS[mode]] if mode == "expand" else [OLD_COLUMNS]
        if cols not in allowed:
            out.problems.append(f"version 3.9.0 with columns {cols}")
    elif out.version == "4.0.0":
        if host.fingerprint() != new_tree:
            out.problems.append("version 4.0.0 but the files are not the new tree")
        if cols != NEW_COLUMNS[mode]:
            out.problems.append(f"version 4.0.0 with columns {cols}")
    else:
        out.problems.append(f"installed version {out.version}")
    if (host.state_dir / "journal.json").exists():
        out.problems.append("a journal is left")
    return out
