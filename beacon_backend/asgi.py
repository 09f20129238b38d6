"""The ASGI application: Django for HTTP, Channels for the five WebSocket routes."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beacon_backend.settings")

from django.core.asgi import get_asgi_application

django_http = get_asgi_application()  # sets Django up before the consumers import models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from beacon_backend.auth import TokenAuthMiddleware  # noqa: E402
from beacon_backend.routing import websocket_urlpatterns  # noqa: E402

websocket_app = TokenAuthMiddleware(URLRouter(websocket_urlpatterns))
if settings.BEACON_ALLOWED_ORIGINS:
    websocket_app = OriginValidator(websocket_app, settings.BEACON_ALLOWED_ORIGINS)

application = ProtocolTypeRouter({"http": django_http, "websocket": websocket_app})
