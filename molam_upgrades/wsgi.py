from __future__ import annotations

import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molam_upgrades.settings")
application = get_wsgi_application()

# Import every view, serializer and URL pattern now rather than in the first request, then take
# all that was loaded (~160,000 objects that live as long as the process) out of the garbage
# collector's generations. A full collection then walks only what requests allocate: under load
# its pauses, during which every request thread of the worker stands still, drop from 80-160 ms
# to under 10 ms, and with them the decision endpoint's p99 (docs/benchmarks.md, section 6).
import_module(settings.ROOT_URLCONF)
gc.freeze()
