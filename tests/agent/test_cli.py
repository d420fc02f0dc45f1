"""The command line: version, help with exit codes, a named missing config, progress under -v."""

from __future__ import annotations

import os
import subprocess
import sys

from molam_agent import __version__
from molam_agent.cli import main

from .conftest import GOOD_MIGRATIONS, REPO


def _agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOLAM_AGENT_")}
    return subprocess.run(
        [sys.executable, "-m", "molam_agent", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(clean, PYTHONPATH=str(REPO), **(env or {})),
        timeout=60,
    )


def test_version():
    proc = _agent("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"molam-agent {__version__}"


def test_help_of_every_verb_lists_the_exit_codes():
    for args in ([], ["upgrade"], ["rollback"], ["status"]):
        proc = _agent(*args, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "exit codes:" in proc.stdout and "rolled back" in proc.stdout and "64" in proc.stdout


def test_no_config_file_is_a_clear_usage_error(tmp_path, capsys):
    missing = tmp_path / "agent.toml"
    assert main(["upgrade", "--config", str(missing)]) == 64
    assert f"no config file at {missing}" in capsys.readouterr().err
    # The default path, absent, with nothing in the environment either.
    proc = _agent("status", env={"MOLAM_AGENT_CONFIG": ""})
    assert proc.returncode == 64
    assert "no config file at /etc/molam-agent/agent.toml" in proc.stderr
    assert "--config" in proc.stderr


def test_verbose_upgrade_prints_progress_for_backup_download_and_copy(mysql_host, small_release):
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS)
    mysql_host.publish(zip_path, "4.0.0")

    rc, out = mysql_host.run("upgrade", "-v")

    assert rc == 0, out
    err = out["_stderr"]
    for line in ("backup files: ", "backup wp_molam_orders: 2,000 rows done", "download: ", "extract: "):
        assert line in err, err
    rc, out = mysql_host.run("upgrade")
    assert "download: " not in out["_stderr"]  # quiet without -v
