"""Lost-write soak of the safe-upgrade agent: randomized rounds of the lost-write test.

Each round: a fresh database (MariaDB or PostgreSQL, at random) with 2,000 orders, a plugin at
3.9.0, shop writers running (one honouring the maintenance flag, one not; inserts, payment
updates, deletions of orders and re-inserts under the same primary key, other plugins'
tables), and one upgrade to 4.0.0 in a random migration mode (expand, down files, snapshot)
that either succeeds, fails its smoke test and rolls back, or is killed with SIGKILL at a
random moment and recovered after the flag's TTL. Then the checks of
``tests/agent/lostwrites.py``: every committed write live with its last value, every committed
deletion still deleted (a row that comes back counts as lost), no foreign table dropped, files
and schema wholly old or wholly new. Prints ``lost=0`` when nothing was lost.

    .venv/bin/python benchmarks/agent_soak.py [--iterations 200] [--seed 1]
    .venv/bin/python benchmarks/agent_soak.py --modes snapshot --iterations 50   # one mode only
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.agent.builders import build_plugin  # noqa: E402
from tests.agent.conftest import _host, create_database  # noqa: E402
from tests.agent.controlplane import FakeControlPlane  # noqa: E402
from tests.agent.lostwrites import run_scenario  # noqa: E402


def _subset(allowed: tuple[str, ...]):
    """An argparse type: a comma-separated, non-empty subset of ``allowed``."""

    def parse(text: str) -> list[str]:
        picked = [v.strip() for v in text.split(",") if v.strip()]
        unknown = sorted(set(picked) - set(allowed))
        if not picked or unknown:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(allowed)}; got {text!r}"
            )
        return picked

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=None)
    parser.add_argument(
        "--modes",
        type=_subset(("expand", "down", "snapshot")),
        default="expand,down,snapshot",
        help="comma-separated, drawn at random",
    )
    parser.add_argument(
        "--engines",
        type=_subset(("mysql", "postgresql")),
        default="mysql,postgresql",
        help="comma-separated, drawn at random",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    rng = random.Random(args.seed)
    modes, engines = args.modes, args.engines
    lost = problems = writes = uncertain = 0
    outcomes: Counter[str] = Counter()
    start = time.monotonic()
    for i in range(args.iterations):
        engine = rng.choice(engines)
        mode = rng.choice(modes)
        scenario = rng.choice(["fail", "success", "kill", "kill"])
        seed = rng.randrange(1_000_000)
        tmp = Path(tempfile.mkdtemp(prefix="molam-soak-", dir=args.workdir))
        files = tmp / "www"
        files.mkdir()
        cp = FakeControlPlane(files)
        url, cleanup = create_database(engine, tmp, rows=2000)
        try:
            host = _host(tmp, cp, url)
            build_plugin(host.plugin_dir, "3.9.0")
            base = build_plugin(tmp / "release-src" / "molam-form", "0", seed=2)
            out = run_scenario(host, base, mode, scenario, seed)
        finally:
            cp.stop()
            cleanup()
            shutil.rmtree(tmp, ignore_errors=True)
        lost += len(out.lost)
        problems += len(out.problems)
        writes += out.writes
        uncertain += out.uncertain
        outcomes[f"{scenario}->{out.version}"] += 1
        flag = "" if not (out.lost or out.problems) else f"  LOST {out.lost[:3]} PROBLEMS {out.problems[:3]}"
        print(
            f"{i + 1:4d} {engine:<10} {mode:<8} {scenario:<7} -> {out.version}  writes={out.writes}"
            f" lost={len(out.lost)}{flag}",
            flush=True,
        )
    print()
    print(
        f"iterations={args.iterations} writes_checked={writes} uncertain={uncertain} problems={problems}"
        f" outcomes={dict(sorted(outcomes.items()))} elapsed={time.monotonic() - start:.0f}s"
    )
    print(f"lost={lost}")
    return 0 if lost == 0 and problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
