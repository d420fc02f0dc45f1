"""How every browser run here launches Chromium: Debian's package and its flags.

Plain constants with no Django or pytest import, so the page tests (``tests/browser.py``) and
the plugin's screenshot script (``tests/php/bin/screenshots.py``, run outside pytest) share them.
"""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
