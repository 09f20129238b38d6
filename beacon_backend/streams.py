"""Event streams: per-stream sequence numbers, persisted history, and broadcast after commit.

Every server->client broadcast belongs to one stream, and each stream is one channel-layer group:

=====================  ==========================================  ===========================
stream                 who listens                                 events
=====================  ==========================================  ===========================
``console``            operators on ``/ws/alerts/``                new_alert, alert_acknowledged,
                                                                   alert_resolved, alert_canceled,
                                                                   alert_updated, location_update
``user.{user_id}``     the phone on ``/ws/user/{id}/``             alert_status_update,
                                                                   operator_message
``alert.{alert_id}``   ``/ws/alerts/{id}/``                        alert_updated
``location.{alert}``   operators on ``/ws/location/{id}/``         location_update
``chat.{alert_id}``    owner and operators on ``/ws/chat/{id}/``   chat_message
=====================  ==========================================  ===========================

:func:`append` must run inside the transaction that stores the record the event describes: the
stream head row is locked, the next ``seq`` taken and the event stored, so seqs have no gaps and a
committed seq ``n`` implies every seq below it is committed too. Events are broadcast only after
the commit (:func:`publish`). A listener that sees a gap fetches the missing events from
:func:`events_between`, so a slow or lossy channel layer costs latency, never data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from beacon_backend.heads import HEADS
from beacon_backend.models import StreamEvent, StreamHead

CONSOLE = "console"
EVENT_TYPE = "stream.event"  # the channel-layer message type; handled by ``stream_event``


def user_stream(user_id: int) -> str:
    return f"user.{user_id}"


def alert_stream(alert_id: uuid.UUID | str) -> str:
    return f"alert.{alert_id}"


def location_stream(alert_id: uuid.UUID | str) -> str:
    return f"location.{alert_id}"


def chat_stream(alert_id: uuid.UUID | str) -> str:
    return f"chat.{alert_id}"


@dataclass(frozen=True)
class Event:
    stream: str
    seq: int
    message: dict[str, Any]  # includes "type" and "seq"


def append(stream: str, payload: dict[str, Any]) -> Event:
    """Store the next event of ``stream``. Call inside ``transaction.atomic()``."""
    head, _ = StreamHead.objects.select_for_update().get_or_create(stream=stream)
    head.last_seq += 1
    head.save(update_fields=["last_seq"])
    StreamEvent.objects.create(stream=stream, seq=head.last_seq, payload=payload)
    return Event(stream, head.last_seq, {**payload, "seq": head.last_seq})


def head(stream: str) -> int:
    found = StreamHead.objects.filter(stream=stream).values_list("last_seq", flat=True).first()
    return int(found or 0)


def events_between(stream: str, after: int, upto: int | None, limit: int) -> list[dict[str, Any]] | None:
    """Events with ``after < seq <= upto`` in order, or ``None`` if more than ``limit`` would come."""
    query = StreamEvent.objects.filter(stream=stream, seq__gt=after)
    if upto is not None:
        query = query.filter(seq__lte=upto)
    rows = list(query.order_by("seq")[: limit + 1])
    if len(rows) > limit:
        return None
    return [row.message() for row in rows]


def status_history(alert_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """Every status the alert entered after ``active``, in order: ``[{status, at, seq}]``."""
    rows = StreamEvent.objects.filter(stream=alert_stream(alert_id)).order_by("seq")
    return [{"status": row.payload["alert"]["status"], "at": row.created_at.isoformat(), "seq": row.seq}
            for row in rows if row.payload.get("type") == "alert_updated"]


def stored_events(seqs: dict[str, int]) -> list[Event]:
    """The stored events named by ``{stream: seq}`` (to republish them for a repeated request)."""
    found = []
    for stream, seq in seqs.items():
        row = StreamEvent.objects.filter(stream=stream, seq=seq).first()
        if row is not None:
            found.append(Event(stream, seq, row.message()))
    return found


def _layer_message(event: Event) -> dict[str, Any]:
    return {"type": EVENT_TYPE, "stream": event.stream, "seq": event.seq, "message": event.message}


async def publish(events: list[Event]) -> None:
    layer = get_channel_layer()
    if layer is None:  # pragma: no cover - settings always define a layer
        return
    for event in events:
        HEADS.saw(event.stream, event.seq)
        await layer.group_send(event.stream, _layer_message(event))


def publish_sync(events: list[Event]) -> None:
    if events:
        async_to_sync(publish)(events)
