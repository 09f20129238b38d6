"""WebSocket URL routes."""

from __future__ import annotations

from django.urls import path, re_path

from beacon_backend.consumers.base import UnknownRoute
from beacon_backend.consumers.routes import (
    AlertChannel,
    ChatChannel,
    LocationChannel,
    OperatorConsole,
    UserChannel,
)

websocket_urlpatterns = [
    path("ws/user/<int:user_id>/", UserChannel.as_asgi()),
    path("ws/alerts/", OperatorConsole.as_asgi()),
    # Any alert id is routed: one that names no alert (or no UUID at all) is refused with 4003.
    re_path(r"^ws/alerts/(?P<alert_id>[^/]+)/$", AlertChannel.as_asgi()),
    re_path(r"^ws/location/(?P<alert_id>[^/]+)/$", LocationChannel.as_asgi()),
    re_path(r"^ws/chat/(?P<alert_id>[^/]+)/$", ChatChannel.as_asgi()),
    re_path(r"", UnknownRoute.as_asgi()),
]
