"""Django settings for the reference Beacon backend; every knob comes from :mod:`.config`."""

from __future__ import annotations

import os
from typing import Any

from beacon_backend import config, logs

DATA_DIR = config.data_dir()
SECRET_KEY = config.secret_key(DATA_DIR)
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "beacon_backend.urls"
ASGI_APPLICATION = "beacon_backend.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "beacon_backend",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
APPEND_SLASH = False

_database_url = os.environ.get("BEACON_DATABASE_URL")
if _database_url:
    _db = config.parse_database_url(_database_url)
    DATABASES: dict[str, dict[str, Any]] = {
        "default": {
            "ENGINE": _db.engine,
            "NAME": _db.name,
            "USER": _db.user,
            "PASSWORD": _db.password,
            "HOST": _db.host,
            "PORT": _db.port,
            "CONN_MAX_AGE": 60,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "beacon.sqlite3"),
            "OPTIONS": {
                # Writers queue instead of failing; IMMEDIATE makes read-then-write safe.
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

_redis_url = os.environ.get("BEACON_REDIS_URL")
if _redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels_redis blocks up to 5 s reading for new messages; redis-py's own 5 s socket
            # timeout would fire first and kill every idle consumer, so it is switched off.
            "CONFIG": {
                "hosts": [{"address": _redis_url, "socket_timeout": None}],
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    # Only users made by `backend provision` are stored with this one (see hashers.py).
    "beacon_backend.hashers.FleetPasswordHasher",
]

BEACON_ACCESS_TTL = config.int_setting("BEACON_ACCESS_TTL", 3600)
BEACON_REFRESH_TTL = config.int_setting("BEACON_REFRESH_TTL", 7 * 24 * 3600)
BEACON_REPLAY_LIMIT = config.int_setting("BEACON_REPLAY_LIMIT", 1000)
BEACON_ALLOWED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("BEACON_ALLOWED_ORIGINS", "").split(",")
    if origin.strip()
]
BEACON_MAX_FRAME_BYTES = 64 * 1024

LOGGING = logs.logging_config()
