"""Smoke test used by the agent tests: the plugin says whether checkout works.

Healthy (exit 0) when ``$MOLAM_PLUGIN_DIR/health`` reads ``ok`` and the plugin header
carries ``$MOLAM_VERSION``. A release can ship ``health = broken`` to fail it.
"""

import os
import sys

plugin_dir = os.environ["MOLAM_PLUGIN_DIR"]
version = os.environ["MOLAM_VERSION"]
with open(os.path.join(plugin_dir, "health")) as fh:
    health = fh.read().strip()
with open(os.path.join(plugin_dir, "molam-form.php")) as fh:
    header = fh.read(4096)
if health != "ok" or f"Version: {version}" not in header:
    print(f"checkout broken: health={health}", file=sys.stderr)
    sys.exit(1)
