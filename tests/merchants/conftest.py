"""Notices are delivered inline, through ``Task.apply`` (see ``tests/merchants/inline_delivery.py``)."""

from __future__ import annotations

from tests.merchants.inline_delivery import _deliver_inline  # noqa: F401 (an autouse fixture)
