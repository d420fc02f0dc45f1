from __future__ import annotations

import pytest

from .stack import Stack, build_stack, drop_database


@pytest.fixture(scope="package")
def stack(tmp_path_factory) -> Stack:
    """The whole compose stack, once for the deploy tests (it takes a few seconds to start)."""
    stack = build_stack(tmp_path_factory.mktemp("stack"))
    yield stack
    stack.stop_all()
    drop_database(stack)
