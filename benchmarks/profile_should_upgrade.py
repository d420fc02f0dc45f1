"""Profiles the should-upgrade decision in-process: the WSGI application called in a loop.

Run after ``benchmarks/setup_should_upgrade.py`` (it prints the token), on the same database::

    LOG_LEVEL=INFO LOG_FORMAT=json .venv/bin/python benchmarks/profile_should_upgrade.py TOKEN \
        [--requests 5000] [--profile cprofile|pyinstrument|none] 2>/dev/null

Prints the CPU time per request (process time over the loop) and, with a profiler, where it goes.
No HTTP server, no load generator: only what the application itself costs per request.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molam_upgrades.settings")

from molam_upgrades.wsgi import application  # noqa: E402


def environ(token: str) -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/plugins/rollouts/woocommerce/should-upgrade",
        "QUERY_STRING": f"merchant_id={uuid.uuid4()}&current_version=3.9.0&country=SN&tier=pro",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def call(token: str) -> str:
    status = []
    body = application(environ(token), lambda s, h, exc_info=None: status.append(s))
    b"".join(body)
    if hasattr(body, "close"):
        body.close()
    return status[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("token")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--profile", choices=["cprofile", "pyinstrument", "none"], default="none")
    args = parser.parse_args()
    for _ in range(200):  # warm: token cache, rollout copy, imports
        status = call(args.token)
    if not status.startswith("200"):
        raise SystemExit(f"warm-up answered {status}")
    profiler = None
    if args.profile == "cprofile":
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    elif args.profile == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        profiler.start()
    started_cpu, started = time.process_time(), time.perf_counter()
    for _ in range(args.requests):
        call(args.token)
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    if args.profile == "cprofile":
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(45)
    elif args.profile == "pyinstrument":
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    print(
        f"requests={args.requests} cpu_ms_per_req={cpu * 1000 / args.requests:.3f} "
        f"wall_ms_per_req={wall * 1000 / args.requests:.3f}"
    )


if __name__ == "__main__":
    main()
