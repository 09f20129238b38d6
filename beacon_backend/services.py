r"""What the backend does for each request, independent of HTTP or WebSocket.

Each operation runs in one transaction: validate, store the record, append the stream events that
describe it, remember the ``client_msg_id``. It returns an :class:`Outcome` whose events the caller
publishes after the commit, and whose ``reply`` becomes the ``ack`` (WebSocket) or the response
body (HTTP). A repeated ``client_msg_id`` returns the remembered reply with ``repeated=True`` and
no events: stored once, acknowledged again.

The alert status machine (closed alerts never reopen)::

    active --acknowledge--> acknowledged --respond--> responding --resolve--> resolved
       |                        |  \________________resolve_____________/
       +------------------------+-------------------------+
                |  false_alarm (staff) / cancel (owner), from any open status
                v
       false_alarm | canceled            (closed, like resolved: no way out)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from beacon_backend import streams, validation
from beacon_backend.errors import Refused, conflict, forbidden, not_found
from beacon_backend.models import (
    OPEN_STATUSES,
    Alert,
    AlertStatus,
    ChatMessage,
    ClientMessage,
    LocationUpdate,
)
from beacon_backend.serializers import alert_dict, chat_dict, location_dict, user_dict


@dataclass
class Outcome:
    reply: dict[str, Any]
    events: list[streams.Event] = field(default_factory=list)
    repeated: bool = False


def _outcome(reply: dict[str, Any], events: list[streams.Event]) -> Outcome:
    """An outcome whose reply remembers the seq each event got, per stream (for ``ack.seq``)."""
    return Outcome(reply={**reply, "seqs": {e.stream: e.seq for e in events}}, events=events)


@dataclass(frozen=True)
class Transition:
    """Who may move an alert into ``target``, and from which statuses."""

    target: AlertStatus
    sources: tuple[AlertStatus, ...]
    actor: str  # "staff" or "owner"
    console_event: str
    phone_message: str


TRANSITIONS: dict[str, Transition] = {
    t.target.value: t
    for t in (
        Transition(AlertStatus.ACKNOWLEDGED, (AlertStatus.ACTIVE,), "staff",
                   "alert_acknowledged", "An operator has acknowledged your alert."),
        Transition(AlertStatus.RESPONDING, (AlertStatus.ACTIVE, AlertStatus.ACKNOWLEDGED), "staff",
                   "alert_updated", "Help is on the way."),
        Transition(AlertStatus.RESOLVED, (AlertStatus.ACKNOWLEDGED, AlertStatus.RESPONDING), "staff",
                   "alert_resolved", "Your alert has been resolved."),
        Transition(AlertStatus.FALSE_ALARM, OPEN_STATUSES, "staff",
                   "alert_updated", "Your alert was closed as a false alarm."),
        Transition(AlertStatus.CANCELED, OPEN_STATUSES, "owner",
                   "alert_canceled", "Your alert has been canceled."),
    )
}


def remembered(sender: User, client_msg_id: str | None, kind: str,
               action: Callable[[], Outcome]) -> Outcome:
    """Run ``action`` once per ``(sender, client_msg_id)``; repeats get the first reply back."""
    if client_msg_id is None:
        with transaction.atomic():
            return action()
    try:
        with transaction.atomic():
            earlier = _earlier_reply(sender, client_msg_id, kind)
            if earlier is not None:
                return earlier
            outcome = action()
            ClientMessage.objects.create(sender=sender, client_msg_id=client_msg_id, kind=kind,
                                         reply=outcome.reply)
            return outcome
    except (IntegrityError, Refused):
        # A concurrent request with the same id committed first (PostgreSQL): ours rolled back,
        # either on the unique key or because the first one already changed what we checked
        # (an alert it acknowledged can no longer be acknowledged). The first reply stands.
        earlier = _earlier_reply(sender, client_msg_id, kind)
        if earlier is None:
            raise
        return earlier


def _earlier_reply(sender: User, client_msg_id: str, kind: str) -> Outcome | None:
    row = ClientMessage.objects.filter(sender=sender, client_msg_id=client_msg_id).first()
    if row is None:
        return None
    if row.kind != kind:
        raise conflict("client_msg_id_reused",
                       f"client_msg_id {client_msg_id!r} was already used for a {row.kind}")
    return Outcome(reply=row.reply, repeated=True)


def find_alert(alert_id: uuid.UUID | str, *, lock: bool = False) -> Alert:
    query = Alert.objects.select_related("user")
    if lock:
        query = query.select_for_update()
    try:
        return query.get(pk=alert_id)
    except (Alert.DoesNotExist, ValueError, ValidationError):  # ValidationError: not a UUID
        raise not_found(f"no alert {alert_id}") from None


def may_view(user: User, alert: Alert) -> bool:
    return user.is_staff or alert.user_id == user.pk


def _status_events(alert: Alert, transition: Transition, operator: User | None) -> list[streams.Event]:
    snapshot = alert_dict(alert)
    console: dict[str, Any] = {"type": transition.console_event, "alert": snapshot}
    if operator is not None:
        console["operator"] = user_dict(operator)
    return [
        streams.append(streams.CONSOLE, console),
        streams.append(streams.user_stream(alert.user_id), {
            "type": "alert_status_update", "alert": snapshot, "message": transition.phone_message}),
        streams.append(streams.alert_stream(alert.id), {"type": "alert_updated", "alert": snapshot}),
    ]


def create_alert(user: User, data: dict[str, Any]) -> Outcome:
    position = validation.fix(data)
    alert_type = validation.text(data, "alert_type", max_len=32, default="panic_button")
    priority = validation.number(data, "priority", low=1, high=5)
    description = validation.text(data, "description", max_len=2000)
    is_silent = validation.boolean(data, "is_silent")
    device_info = validation.mapping(data, "device_info")
    network_info = validation.mapping(data, "network_info")
    client_msg_id = validation.client_msg_id(data)

    def action() -> Outcome:
        alert = Alert.objects.create(
            user=user, alert_type=alert_type or "panic_button",
            priority=int(priority) if priority is not None else 4,
            latitude=position.latitude, longitude=position.longitude,
            location_accuracy=position.accuracy, provider=position.provider,
            battery_level=position.battery_level, description=description, is_silent=is_silent,
            device_info=device_info, network_info=network_info, client_msg_id=client_msg_id,
        )
        snapshot = alert_dict(alert)
        event = streams.append(streams.CONSOLE, {"type": "new_alert", "alert": snapshot})
        return _outcome({"alert_id": str(alert.id), "alert": snapshot}, [event])

    return remembered(user, client_msg_id, "create", action)


def add_location(user: User, alert_id: uuid.UUID | str, data: dict[str, Any], via: str) -> Outcome:
    position = validation.fix(data, accuracy_required=(via == "http"))
    client_msg_id = validation.client_msg_id(data)

    def action() -> Outcome:
        alert = find_alert(alert_id, lock=True)  # a cancel committing meanwhile must win
        if alert.user_id != user.pk:
            raise forbidden("only the alert's owner may send its location")
        if alert.status not in OPEN_STATUSES:
            raise conflict("alert_closed", f"alert is {alert.status}; no more locations")
        record = LocationUpdate.objects.create(
            alert=alert, latitude=position.latitude, longitude=position.longitude,
            accuracy=position.accuracy, altitude=position.altitude, speed=position.speed,
            heading=position.heading, provider=position.provider,
            battery_level=position.battery_level, client_timestamp=position.timestamp,
            client_msg_id=client_msg_id, via=via,
        )
        body = {"type": "location_update", "alert_id": str(alert.id), "location": location_dict(record)}
        listeners = streams.append(streams.location_stream(alert.id), body)
        console = streams.append(streams.CONSOLE, body)
        return _outcome({"location_id": record.pk}, [listeners, console])

    return remembered(user, client_msg_id, "location", action)


def send_chat(user: User, alert_id: uuid.UUID | str, data: dict[str, Any]) -> Outcome:
    message = validation.chat_text(data)
    client_msg_id = validation.client_msg_id(data)

    def action() -> Outcome:
        alert = find_alert(alert_id)
        if not may_view(user, alert):
            raise forbidden("not a party to this alert")
        chat = ChatMessage.objects.create(alert=alert, sender=user, message=message,
                                          is_staff=user.is_staff, client_msg_id=client_msg_id)
        body = chat_dict(chat)
        events = [streams.append(streams.chat_stream(alert.id), {"type": "chat_message", **body})]
        if user.is_staff and alert.user_id != user.pk:
            events.append(streams.append(streams.user_stream(alert.user_id), {
                "type": "operator_message", "alert_id": str(alert.id), "message": body,
                "operator": user_dict(user)}))
        return _outcome({"message_id": chat.pk}, events)

    return remembered(user, client_msg_id, "chat", action)


def change_status(user: User, alert_id: uuid.UUID | str, target: str, data: dict[str, Any]) -> Outcome:
    """Move an alert along the status machine; refuse illegal moves with a reason."""
    transition = TRANSITIONS.get(target)
    if transition is None:  # pragma: no cover - callers pass known targets
        raise Refused("invalid_transition", f"unknown status {target!r}")
    notes = validation.text(data, "notes", max_len=4000)
    client_msg_id = validation.client_msg_id(data)

    def action() -> Outcome:
        alert = find_alert(alert_id, lock=True)
        if transition.actor == "staff" and not user.is_staff:
            raise forbidden(f"only operators may set an alert to {target}")
        if transition.actor == "owner" and alert.user_id != user.pk:
            raise forbidden(f"only the alert's owner may set it to {target}")
        if alert.status not in transition.sources:
            raise conflict("invalid_transition",
                           f"alert is {alert.status}; it cannot become {target}")
        now = timezone.now()
        alert.status = transition.target
        if transition.target == AlertStatus.ACKNOWLEDGED:
            alert.acknowledged_at = now
            alert.assigned_operator = user
        elif transition.target == AlertStatus.RESPONDING and alert.assigned_operator_id is None:
            alert.assigned_operator = user
        elif transition.target in (AlertStatus.RESOLVED, AlertStatus.FALSE_ALARM):
            alert.resolved_at = now
        if notes:
            alert.notes = notes
        alert.save()
        operator = user if user.is_staff else None
        events = _status_events(alert, transition, operator)
        return _outcome({"alert": alert_dict(alert)}, events)

    return remembered(user, client_msg_id, f"status:{target}", action)


def active_alerts() -> list[dict[str, Any]]:
    return [alert_dict(a) for a in Alert.objects.filter(status__in=OPEN_STATUSES)]


def last_location(alert: Alert) -> dict[str, Any] | None:
    latest = alert.locations.order_by("-created_at", "-id").first()
    return location_dict(latest) if latest else None
