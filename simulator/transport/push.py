"""The push service beside a live backend: high-priority pushes (FCM/APNs) that wake a phone.

The modelled backend sends a push to a phone when it writes an event to the phone's user stream
and nobody listens there (:mod:`simulator.transport.backend_model`, ASSUME a push service beside
the backend, as emergency apps have). A real backend under test has no push service the fleet can
see, so in ``run`` the fleet plays it, from what it can observe: when one of its operators
acknowledges, resolves or chats on an alert (each writes to the owner's user stream) and the
owner's phone holds no socket on its user channel, the phone gets a push after the profile's
``push_latency_s`` if it has network then.

Owners are learned from the alert snapshots the backend sends (``new_alert``, ``alert_status``,
acks carrying ``alert``). The one difference from the model: "nobody listens" is the phone's view,
so a socket the phone has given up on but the backend still holds half-open counts as not
listening here, and as listening in the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.protocol.actions import USER
from simulator.transport.modelled import Endpoint

#: Operator messages that write to the alert owner's user stream, and where the alert id is.
USER_STREAM_WRITES = frozenset({"acknowledge_alert", "resolve_alert"})


class PushGateway:
    """Decides and delivers pushes for one live wire."""

    def __init__(self, latency_s: float, at: Callable[[float, Callable[[], None]], None],
                 listening: Callable[[Endpoint, str], bool], now: Callable[[], float]) -> None:
        self.latency_s = latency_s
        self._at, self._listening, self._now = at, listening, now
        self.owners: dict[str, int] = {}  # alert id -> owner's user id
        self.phones: dict[int, Endpoint] = {}  # user id -> the phone that listens on its user channel
        self.sent = 0

    def subscribed(self, endpoint: Endpoint, channel: str) -> None:
        """An endpoint opened a channel: a phone's user channel makes it a push target."""
        if channel == USER:
            self.phones[endpoint.user_id] = endpoint

    def saw(self, message: dict[str, Any]) -> None:
        """A frame from the backend: learn the owner of any alert it describes."""
        alert = message.get("alert")
        if isinstance(alert, dict):
            alert_id, user = alert.get("id"), alert.get("user")
            if isinstance(alert_id, str) and isinstance(user, int):
                self.owners[alert_id.lower()] = user

    def sending(self, endpoint: Endpoint, channel: str, message: dict[str, Any]) -> None:
        """An endpoint sends a frame: push the alert's owner if it is written to and not listening."""
        kind = message.get("type")
        if kind in USER_STREAM_WRITES:
            alert_id = message.get("alert_id")
        elif kind == "chat_message" and channel.startswith("chat:"):
            alert_id = channel[len("chat:"):]
        else:
            return
        if not isinstance(alert_id, str):
            return
        owner = self.owners.get(alert_id.lower())
        if owner is None or owner == endpoint.user_id:
            return
        phone = self.phones.get(owner)
        if phone is None or self._listening(phone, USER):
            return
        self.sent += 1
        self._at(self.latency_s, lambda: self._deliver(phone))

    def _deliver(self, phone: Endpoint) -> None:
        now = self._now()
        if phone.link_delay(100, False, now) is not None:  # the device has network
            phone.on_push(now)
