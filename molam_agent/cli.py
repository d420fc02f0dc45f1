"""``molam-agent``: the command line.

    molam-agent upgrade [--force] [--dry-run] [--config FILE] [--json] [-v]
    molam-agent rollback --to VERSION [--config FILE] [--json] [-v]
    molam-agent recover | status | prune | report-payments [--config FILE] [--json] [-v]
    molam-agent --version

Exit codes are listed in ``EXIT_CODES`` (shown by ``--help``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from . import __version__, payment_health
from .config import load_config
from .engine import Agent, result
from .errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_ROLLBACK_FAILED,
    EXIT_USAGE,
    AgentError,
    ConfigError,
    LockedError,
    UsageError,
)
from .release import UNSIGNED_WARNING
from .versions import is_valid

EXIT_CODES = f"""exit codes:
  {EXIT_OK:<3} success, skipped (nothing to do, control plane unreachable, another run
      in progress) or dry run
  {EXIT_FAILED:<3} the upgrade failed: the plugin was rolled back, or never touched
  {EXIT_ROLLBACK_FAILED:<3} the rollback itself failed: an operator must act (see the alert)
  {EXIT_USAGE:<3} bad usage or configuration (no config file, missing key, refused URL)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse exits 2 on usage errors; 2 means "rollback failed" here, so use 64.
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config (default: $MOLAM_AGENT_CONFIG or /etc/molam-agent/agent.toml)",
    )
    common.add_argument("--json", action="store_true", help="print one JSON result object on stdout")
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log every step, with progress lines, on stderr"
    )
    parser = _Parser(
        prog="molam-agent",
        description="Safe upgrades with automatic rollback for Molam payment plugins.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"molam-agent {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=[common],
            help=text,
            description=text,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    up = verb("upgrade", "upgrade when the rollout selects this merchant")
    up.add_argument("--force", action="store_true", help="upgrade even if not selected, or on hold")
    up.add_argument("--dry-run", action="store_true", help="verify and show the plan; change nothing")
    rb = verb("rollback", "restore a kept version (trigger: manual)")
    rb.add_argument("--to", required=True, metavar="VERSION")
    verb("recover", "finish or undo an interrupted operation")
    verb("status", "show installed version, kept versions, queue")
    verb("prune", "delete backups past retention_days")
    verb("report-payments", "send the last complete hours' payment figures ([payment_health])")
    return parser


def exit_code(out: dict[str, Any]) -> int:
    """Map a result object to the documented exit code."""
    if out.get("rollback_status") == "failed":
        return EXIT_ROLLBACK_FAILED
    if out.get("status") == "failed":
        return EXIT_FAILED
    return EXIT_OK


def _print(out: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(out, default=str, sort_keys=False))
        return
    line = str(out.get("status"))
    if out.get("from_version") or out.get("to_version"):
        line += f": {out.get('from_version')} -> {out.get('to_version') or '?'}"
    print(line)
    for key, value in out.items():
        if key in ("status", "from_version", "to_version") or value in (None, "", [], {}):
            continue
        shown = value if isinstance(value, (str, int, float, bool)) else json.dumps(value, default=str)
        print(f"  {key}: {shown}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``molam-agent`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="molam-agent: %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.verb == "rollback" and not is_valid(args.to):
            raise UsageError(f"--to {args.to!r} is not a version")
        cfg = load_config(args.config)
        if cfg.allow_unsigned and not cfg.public_key:
            logging.getLogger("molam_agent").warning(UNSIGNED_WARNING)
        agent = Agent(cfg)
        with agent.locked():
            if args.verb == "upgrade":
                out = agent.upgrade(force=args.force, dry_run=args.dry_run)
            elif args.verb == "rollback":
                recovered = agent.recover()
                if recovered and recovered.get("rollback_status") == "failed":
                    out = recovered
                else:
                    out = agent.rollback_to(args.to, trigger="manual")
            elif args.verb == "recover":
                out = agent.recover() or result("skipped", reason="nothing to recover")
                agent.outbox.flush(agent.client)
            elif args.verb == "report-payments":
                out = payment_health.report(agent)
            elif args.verb == "status":
                agent.recover()
                out = agent.status()
            else:
                agent.recover()
                out = agent.prune()
    except (ConfigError, UsageError) as exc:
        print(f"molam-agent: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps(result("failed", error=str(exc))))
        return EXIT_USAGE
    except LockedError as exc:
        out = result("skipped", reason=str(exc))
        if args.verb == "status":
            out = Agent(load_config(args.config)).status()
    except AgentError as exc:
        out = result("failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - keep the --json contract even for the unexpected
        logging.getLogger("molam_agent").exception("unexpected error")
        out = result("failed", error=f"{exc.__class__.__name__}: {exc}")
    _print(out, args.json)
    return exit_code(out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
