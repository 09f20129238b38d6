"""Point Django at a data directory and bring the database schema up to date."""

from __future__ import annotations

import os
from pathlib import Path


def configure(data_dir: Path | None = None, database_url: str | None = None,
              redis_url: str | None = None) -> None:
    """Set the environment every process of a deployment reads, then set Django up.

    Must run before anything imports Django settings; child processes inherit the variables.
    """
    if data_dir is not None:
        os.environ["BEACON_DATA_DIR"] = str(Path(data_dir).resolve())
    from beacon_backend.config import data_dir as configured_dir
    from beacon_backend.config import secret_key

    secret_key(configured_dir(), create=True)  # before settings load, so every worker shares it
    if database_url:
        os.environ["BEACON_DATABASE_URL"] = database_url
    if redis_url:
        os.environ["BEACON_REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beacon_backend.settings")
    import django

    django.setup()


def migrate() -> None:
    """Apply migrations (a no-op when the schema is current; safe while a server runs)."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
