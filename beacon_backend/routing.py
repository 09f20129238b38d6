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
    path("ws/alerts/<uuid:alert_id>/", AlertChannel.as_asgi()),
    path("ws/location/<uuid:alert_id>/", LocationChannel.as_asgi()),
    path("ws/chat/<uuid:alert_id>/", ChatChannel.as_asgi()),
    re_path(r"", UnknownRoute.as_asgi()),
]
