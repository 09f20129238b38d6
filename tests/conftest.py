"""Shared fixtures: a real SQLite data directory for in-process tests, and real server processes.

Django is configured here, once, before any test module imports it: the database is a file in a
temporary data directory (WAL mode, as in production), emptied after every test that used it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_DATA_DIR = Path(tempfile.mkdtemp(prefix="beacon-test-"))
atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)
os.environ.pop("BEACON_REDIS_URL", None)
os.environ.pop("BEACON_DATABASE_URL", None)
os.environ["BEACON_DATA_DIR"] = str(_DATA_DIR)

from beacon_backend.deployment import configure, migrate  # noqa: E402

configure(_DATA_DIR)
migrate()

pytest_plugins = ["tests.backend.fixtures", "tests.backend.postgres", "tests.backend.sockets"]
