"""The lost-write test: shop writers keep inserting and updating orders -- some honouring the
maintenance flag, some not -- while the agent upgrades and fails, upgrades and succeeds, or is
killed at a random moment and recovered only after the flag's TTL. Every write a writer saw
committed must be live with its last value; no foreign table dropped; files and schema wholly
old or wholly new. (``benchmarks/agent_soak.py`` runs 200 randomized rounds of the same.)
"""

from __future__ import annotations

import zlib

import pytest

from .conftest import _host, build_plugin, create_database
from .lostwrites import run_scenario


@pytest.mark.parametrize("scenario", ["fail", "success", "kill"])
@pytest.mark.parametrize("mode", ["expand", "down", "snapshot"])
@pytest.mark.parametrize("engine", ["mysql", "postgresql"])
def test_no_committed_write_is_lost(tmp_path, control_plane, engine, mode, scenario):
    url, cleanup = create_database(engine, tmp_path, rows=2000)
    try:
        host = _host(tmp_path, control_plane, url)
        build_plugin(host.plugin_dir, "3.9.0")
        base = build_plugin(tmp_path / "release-src" / "molam-form", "0", seed=2)
        seed = zlib.crc32(f"{engine}-{mode}-{scenario}".encode()) % 10_000

        out = run_scenario(host, base, mode, scenario, seed)

        assert out.writes > 20, "the writers barely wrote: the test proves nothing"
        assert out.lost == [], out.lost[:10]
        assert out.problems == []
        expected_version = {"success": "4.0.0", "fail": "3.9.0"}.get(scenario)
        if expected_version:
            assert out.version == expected_version
    finally:
        cleanup()
