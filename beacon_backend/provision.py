"""Create the fleet's users in bulk and write their credentials.

Thousands of users in seconds: one bulk insert, passwords stored with the cheap fleet hasher.
Provisioning is idempotent per name: running it again with the same prefix resets the passwords of
the users it already made and adds any missing ones, so a credentials file always matches the
database it was written for.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BATCH = 500


def usernames(prefix: str, kind: str, count: int) -> list[str]:
    width = max(5 if kind == "phone" else 3, len(str(count)))
    return [f"{prefix}-{kind}-{index:0{width}d}" for index in range(1, count + 1)]


Credentials = dict[str, list[dict[str, Any]]]


def provision(phones: int, operators: int, prefix: str = "fleet",
              before_commit: Callable[[Credentials], None] | None = None) -> Credentials:
    """Create or reset ``phones`` phone users and ``operators`` staff users; return credentials.

    ``before_commit`` runs inside the transaction with the credentials (the CLI stages the file
    there): if it raises, no password is changed, so a file and its database never disagree.
    Django must be configured and migrated (see :mod:`beacon_backend.deployment`).
    """
    from django.contrib.auth.models import User
    from django.db import transaction

    from beacon_backend.hashers import FleetPasswordHasher

    hasher = FleetPasswordHasher()
    wanted: list[tuple[str, bool]] = [(name, False) for name in usernames(prefix, "phone", phones)]
    wanted += [(name, True) for name in usernames(prefix, "operator", operators)]
    passwords = {name: secrets.token_urlsafe(12) for name, _ in wanted}

    names = [name for name, _ in wanted]
    with transaction.atomic():
        existing = {u.username: u for u in _in_chunks(User.objects.all(), names)}
        fresh: list[User] = []
        for name, staff in wanted:
            encoded = hasher.encode(passwords[name], hasher.salt())
            user = existing.get(name)
            if user is None:
                fresh.append(User(username=name, password=encoded, is_staff=staff, is_active=True))
            else:
                user.password, user.is_staff, user.is_active = encoded, staff, True
        User.objects.bulk_create(fresh, batch_size=BATCH)
        User.objects.bulk_update(list(existing.values()), ["password", "is_staff", "is_active"],
                                 batch_size=BATCH)
        ids = {u.username: u.pk for u in _in_chunks(User.objects.only("id", "username"), names)}

        def entry(name: str) -> dict[str, Any]:
            return {"id": ids[name], "username": name, "password": passwords[name]}

        credentials = {"phones": [entry(n) for n, staff in wanted if not staff],
                       "operators": [entry(n) for n, staff in wanted if staff]}
        if before_commit is not None:
            before_commit(credentials)
    return credentials


def _in_chunks(query: Any, names: list[str]) -> Iterator[Any]:
    """Users named in ``names``, looked up in slices (SQLite caps the variables per statement)."""
    for start in range(0, len(names), BATCH):
        yield from query.filter(username__in=names[start:start + BATCH])


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def stage_credentials(credentials: Credentials, out: Path) -> None:
    """Write ``<out>.partial``, readable by the owner only (the file holds passwords)."""
    if out.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(out)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(credentials, handle, indent=1)
            handle.write("\n")
    except OSError:
        partial.unlink(missing_ok=True)
        raise


def write_credentials(credentials: Credentials, out: Path) -> None:
    """Write atomically: stage the partial file, then rename it over ``out``."""
    stage_credentials(credentials, out)
    partial_path(out).replace(out)
