"""What every Beacon socket does, whatever its route.

A socket's life: the handshake is always accepted, then credentials are checked (close 4001 for a
missing, invalid or expired token, or a refresh token) and the route's access rule applied (close
4003). An authorised socket joins its stream's group, catches up, and then serves frames:

* a text frame must be a JSON object with a string ``type`` that the route handles; anything else
  gets ``{"type": "error", "code": ...}`` and the socket stays open. A binary frame gets an error
  too; a frame over 64 KiB closes the socket with 1009. An action on someone else's behalf (an
  operator sending a phone-only message) gets ``error forbidden`` and the socket is closed 4003.
* an action that carries ``client_msg_id`` is answered with ``ack`` once its record is committed
  (a repeat is acknowledged again, never stored twice); without one, with ``success``.
* every frame the server sends carries ``seq``, and on one socket it never decreases. Stream
  events carry their own (strictly increasing, gap-free per stream); replies carry the last event
  seq this socket delivered, so a client may resume from the highest ``seq`` it has seen. Before
  an ``ack``, the socket is sent its own stream's copy of the event the action produced, so the
  ack's ``seq`` covers it (``result.seqs`` lists the seq the action got on every stream).
* catching up: without ``?since=`` the socket starts at the stream head (routes with a snapshot send
  it); with ``?since=N`` it first replays the events after N from the database, or sends
  ``resync_required`` if it cannot. A live event that arrives ahead of a gap pulls the missing
  events from the database first, so delivery is in order and exactly once per socket.
* when the access token expires, the socket is closed with 4001.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import User

from beacon_backend import services, streams
from beacon_backend.auth import Identity, query_params
from beacon_backend.errors import Refused, bad_field, forbidden, not_found
from beacon_backend.heads import HEADS
from beacon_backend.services import Outcome
from beacon_backend.validation import json_object

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_NOT_FOUND = 4004
CLOSE_TOO_BIG = 1009

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class BeaconSocket(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Base for the five Beacon routes; subclasses set the access rule, stream and handlers."""

    user: User
    stream: str | None = None
    last_seq: int = 0
    is_open: bool = False
    _following: bool = False  # counted in HEADS
    _expiry: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def connect(self) -> None:
        await self.accept()
        self.is_open = True
        identity: Identity = self.scope["identity"]
        if identity.user is None:
            await self.close(CLOSE_UNAUTHENTICATED)
            return
        self.user = identity.user
        try:
            await self.authorize()
        except Refused:
            await self.close(CLOSE_FORBIDDEN)
            return
        if self.stream is not None and self.follows_stream():
            # Subscribe before reading the head: nothing committed after the read can be missed.
            await self.channel_layer.group_add(self.stream, self.channel_name)
        if identity.expires_at is not None:
            self._expiry = asyncio.ensure_future(self._close_at(identity.expires_at))
        await self.catch_up()

    async def disconnect(self, code: int) -> None:
        self.is_open = False
        if self._following and self.stream is not None:
            self._following = False
            HEADS.unfollow(self.stream)
        if self._expiry is not None:
            self._expiry.cancel()
        if self.stream is not None:
            await self.channel_layer.group_discard(self.stream, self.channel_name)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if self.is_open:
            self.is_open = False
            await super().close(code=code, reason=reason)

    async def _close_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self.close(CLOSE_UNAUTHENTICATED)

    # -- what subclasses provide -----------------------------------------------------------------

    async def authorize(self) -> None:
        """Raise :class:`Refused` if ``self.user`` may not use this route; set ``self.stream``.

        Every route states its own rule; one that does not admits no one.
        """
        raise forbidden("this route admits no one")

    def follows_stream(self) -> bool:
        """Whether this socket receives its stream's events (a phone sending locations does not)."""
        return True

    async def snapshot(self) -> dict[str, Any] | None:
        """The state message sent on connect (after any replay), or None."""
        return None

    def handlers(self) -> dict[str, Handler]:
        return {}

    # -- sending ---------------------------------------------------------------------------------

    async def send_json(self, message: dict[str, Any]) -> None:
        if self.is_open:
            await self.send(text_data=json.dumps(message, separators=(",", ":")))

    async def reply(self, message: dict[str, Any]) -> None:
        await self.send_json({**message, "seq": self.last_seq})

    async def send_error(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        error: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if data is not None and isinstance(data.get("client_msg_id"), str):
            error["client_msg_id"] = data["client_msg_id"]
        await self.reply(error)

    async def confirm(self, data: dict[str, Any], outcome: Outcome, message: str) -> None:
        """Publish the outcome's events, then ``ack`` (with client_msg_id) or ``success``.

        This socket's own copy of the event it caused is delivered (from the database) before the
        reply, so ``seq`` never goes backwards on the wire and the ack's ``seq`` is a safe resume
        point. A repeat republishes the stored events: a listener that lost them gets them now,
        the others drop them by ``seq``.
        """
        events = outcome.events
        if outcome.repeated:
            events = await database_sync_to_async(streams.stored_events)(outcome.reply.get("seqs", {}))
        await streams.publish(events)
        produced = outcome.reply.get("seqs", {}).get(self.stream)
        if isinstance(produced, int) and self.follows_stream() and produced > self.last_seq:
            await self.deliver_until(produced)
        client_msg_id = data.get("client_msg_id")
        if isinstance(client_msg_id, str):
            await self.reply({"type": "ack", "client_msg_id": client_msg_id,
                              "repeated": outcome.repeated, "result": outcome.reply})
        else:
            await self.reply({"type": "success", "message": message, "result": outcome.reply})

    async def deliver_until(self, seq: int) -> None:
        """Send this socket's stream events after ``last_seq`` up to ``seq``, from the database."""
        if self.stream is None:
            return
        missing = await database_sync_to_async(streams.events_between)(
            self.stream, self.last_seq, seq, settings.BEACON_REPLAY_LIMIT)
        if missing is None:
            await self.reply({"type": "resync_required", "since": self.last_seq, "head": seq})
        else:
            for message in missing:
                await self.send_json(message)
        self.last_seq = max(self.last_seq, seq)

    # -- catching up and following the stream ----------------------------------------------------

    async def catch_up(self) -> None:
        since = self._since()
        if self.stream is not None and self.follows_stream():
            head, backlog = await database_sync_to_async(_backlog)(self.stream, since)
            if not self._following and self.is_open:
                self._following = True
                HEADS.follow(self.stream, head)
            if since is not None and (since > head or backlog is None):
                self.last_seq = head
                await self.reply({"type": "resync_required", "since": since, "head": head})
            else:
                for message in backlog or []:
                    await self.send_json(message)
                self.last_seq = head
        state = await self.snapshot()
        if state is not None:
            await self.reply(state)

    def _since(self) -> int | None:
        raw = query_params(self.scope).get("since")
        if raw is None:
            return None
        if raw.isascii() and raw.isdigit():
            return int(raw)
        return None

    async def stream_event(self, event: dict[str, Any]) -> None:
        seq = int(event["seq"])
        HEADS.saw(str(event.get("stream", self.stream)), seq)
        if seq <= self.last_seq or not self.is_open:
            return
        if seq > self.last_seq + 1:
            await self.deliver_until(seq - 1)
        self.last_seq = seq
        await self.send_json(event["message"])

    # -- receiving -------------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.send_error("binary_frame", "binary frames are not supported; send JSON text")
            return
        if len(text_data) * 4 > settings.BEACON_MAX_FRAME_BYTES and \
                len(text_data.encode()) > settings.BEACON_MAX_FRAME_BYTES:
            await self.close(CLOSE_TOO_BIG)
            return
        try:
            data = json_object(json.loads(text_data))
        except (json.JSONDecodeError, RecursionError):
            await self.send_error("invalid_json", "the frame is not valid JSON (or nested too deeply)")
            return
        except Refused as refused:
            await self.send_error(refused.code, refused.message)
            return
        kind = data.get("type")
        if not isinstance(kind, str):
            await self.send_error("invalid_message", "a message needs a string 'type'", data)
            return
        handler = self.handlers().get(kind)
        if handler is None:
            await self.send_error("unknown_type", f"this route does not handle {kind!r}", data)
            return
        try:
            await handler(data)
        except Refused as refused:
            if refused.code == "forbidden" and refused.http_status == 403:
                # Someone else's alert, or an operator trying a phone-only action: refused as a
                # cross-user connect would be. The reason goes first, for clients that log it.
                await self.send_error(refused.code, refused.message, data)
                await self.close(CLOSE_FORBIDDEN)
                return
            await self.send_error(refused.code, refused.message, data)
        except Exception:
            log.exception("handler for %s failed", kind)
            await self.send_error("internal_error", "the server could not handle this message", data)

    async def ping(self, data: dict[str, Any]) -> None:
        """``pong``; first, any stream events this socket should have had but did not get.

        A live event is the usual way a gap is noticed; the heartbeat catches the case where the
        lost event was the last one (a full channel-layer queue, an expired Redis message), by
        the first ping after the process learnt the head (:mod:`beacon_backend.heads`).
        """
        if self.stream is not None and self.follows_stream():
            head = HEADS.get(self.stream)  # this process's view, refreshed every second (heads.py)
            if head is None:
                head = await database_sync_to_async(streams.head)(self.stream)
            if head > self.last_seq:
                await self.deliver_until(head)
        pong: dict[str, Any] = {"type": "pong"}
        if "timestamp" in data:
            pong["timestamp"] = data["timestamp"]
        await self.reply(pong)

    # -- helpers for subclasses ------------------------------------------------------------------

    def route_alert_id(self) -> str:
        return str(self.scope["url_route"]["kwargs"]["alert_id"])

    async def load_alert(self) -> Any:
        """The route's alert if this user may see it; refused otherwise (unknown counts as not allowed)."""
        try:
            alert = await database_sync_to_async(services.find_alert)(self.route_alert_id())
        except Refused:
            raise forbidden("unknown alert") from None
        if not services.may_view(self.user, alert):
            raise forbidden("not a party to this alert")
        return alert


def _backlog(stream: str, since: int | None) -> tuple[int, list[dict[str, Any]] | None]:
    head = streams.head(stream)
    if since is None or since >= head:
        return head, []
    return head, streams.events_between(stream, since, head, settings.BEACON_REPLAY_LIMIT)


def alert_id_field(data: dict[str, Any]) -> str:
    value = data.get("alert_id")
    if not isinstance(value, str) or not value:
        raise bad_field("alert_id", "is required (a string)")
    return value


class UnknownRoute(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Any other path: accepted, then closed with 4004 so the client learns why."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(CLOSE_NOT_FOUND)


__all__ = ["CLOSE_FORBIDDEN", "CLOSE_UNAUTHENTICATED", "BeaconSocket", "UnknownRoute",
           "alert_id_field", "not_found"]
