"""Smoke command that writes like the shop does while checkout is paused, then answers.

Environment: ``MOLAM_TEST_DB_URL``; ``MOLAM_TEST_SQL`` (JSON list of statements, run with
autocommit when ``MOLAM_VERSION`` equals ``MOLAM_TEST_ON_VERSION``); ``MOLAM_TEST_EXIT`` (exit
status for that version; any other version is healthy).
"""

import json
import os
import sys

from molam_agent.db import connect

if os.environ.get("MOLAM_VERSION") == os.environ.get("MOLAM_TEST_ON_VERSION"):
    with connect(os.environ["MOLAM_TEST_DB_URL"]) as db:
        for sql in json.loads(os.environ.get("MOLAM_TEST_SQL", "[]")):
            db.execute(sql)
    sys.exit(int(os.environ.get("MOLAM_TEST_EXIT", "1")))
sys.exit(0)
