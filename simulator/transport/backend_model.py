"""A modelled Beacon backend: the reference backend's protocol, as plain data, for virtual time.

It mirrors ``beacon_backend`` (PROTOCOL.md Parts A and B) closely enough that a client cannot tell
the difference at the message level: the five routes and their access rules (close 4001/4003),
the alert status machine, persisted streams with per-stream ``seq``, ``?since=`` replay,
``client_msg_id`` idempotency with ``ack`` after the store, the socket's own copy of an event
before its ack, and gap filling from the store when a live event is missing. It performs no I/O and
knows no time: :mod:`simulator.transport.modelled` decides when frames arrive.

Optionally it loses live events the way a full Channels queue does (at most once, silently):
``drop_rate`` is the chance that one group message to one consumer is dropped. With ``gap_fill``
(the reference backend's behaviour) the consumer recovers it from the store on its next event or
ping; without it (a plain Channels app) the event is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CLOSED_STATUSES = ("resolved", "canceled", "false_alarm")
OPEN_STATUSES = ("active", "acknowledged", "responding")
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    # target: (from, who, console event)
    "acknowledged": (("active",), "staff", "alert_acknowledged"),
    "responding": (("active", "acknowledged"), "staff", "alert_updated"),
    "resolved": (("acknowledged", "responding"), "staff", "alert_resolved"),
    "false_alarm": (OPEN_STATUSES, "staff", "alert_updated"),
    "canceled": (OPEN_STATUSES, "owner", "alert_canceled"),
}
CONSOLE_ACTIONS = {"acknowledge_alert": "acknowledged", "respond_alert": "responding",
                   "resolve_alert": "resolved", "false_alarm": "false_alarm"}

Frame = tuple[int, dict[str, Any]]  # (connection id, message)


@dataclass
class Alert:
    id: str
    owner: int
    status: str
    latitude: float
    longitude: float
    client_msg_id: str | None
    locations: list[dict[str, Any]] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    operator: int | None = None
    history: list[str] = field(default_factory=list)  # every status it entered after "active"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.owner, "status": self.status,
                "latitude": self.latitude, "longitude": self.longitude,
                "assigned_operator": self.operator, "is_active": self.status in OPEN_STATUSES,
                "client_msg_id": self.client_msg_id}


@dataclass
class Consumer:
    user: int
    staff: bool
    route: str
    alert_id: str | None
    stream: str | None
    follows: bool
    last_seq: int = 0


@dataclass
class Result:
    """What one request caused: frames to send, and a close code for the requester's socket."""

    frames: list[Frame] = field(default_factory=list)
    close: int | None = None
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    pushes: list[int] = field(default_factory=list)  # users to wake with a high-priority push


class Refusal(Exception):
    def __init__(self, code: str, message: str, status: int, close: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.close = code, message, status, close


class BackendModel:
    """The reference backend's protocol state machine (see the module docstring)."""

    def __init__(self, random: Callable[[], float], drop_rate: float = 0.0, gap_fill: bool = True,
                 replay_limit: int = 1000) -> None:
        self._random = random
        self.drop_rate = drop_rate
        self.gap_fill = gap_fill
        self.replay_limit = replay_limit
        self.staff: dict[int, bool] = {}
        self.alerts: dict[str, Alert] = {}
        self.streams: dict[str, list[dict[str, Any]]] = {}
        self.groups: dict[str, set[int]] = {}
        self.consumers: dict[int, Consumer] = {}
        self.remembered: dict[tuple[int, str], tuple[str, dict[str, Any], dict[str, int]]] = {}
        self.dropped_events = 0
        self._locations = 0  # every alert's locations, counted (the next location id)
        self._chats = 0  # every alert's chat messages, counted (the next chat id)

    def add_user(self, user_id: int, staff: bool) -> None:
        self.staff[user_id] = staff

    # -- sockets ---------------------------------------------------------------------------------

    def connect(self, conn: int, user: int, path: str, since: int | None) -> Result:
        """A handshake: accepted (frames to send) or refused (close code)."""
        if user not in self.staff:
            return Result(close=4001)
        staff = self.staff[user]
        parts = [p for p in path.split("/") if p]
        route = parts[1] if len(parts) > 1 else ""
        alert_id = parts[2] if len(parts) > 2 else None
        if route == "user" and alert_id is not None:
            if not alert_id.isdigit() or (int(alert_id) != user and not staff):
                return Result(close=4003)
            stream, follows = f"user.{alert_id}", True
            alert_id = None
        elif route == "alerts" and alert_id is None:
            if not staff:
                return Result(close=4003)
            stream, follows = "console", True
        elif route in ("alerts", "location", "chat") and alert_id is not None:
            alert = self.alerts.get(alert_id)
            if alert is None or (alert.owner != user and not staff):
                return Result(close=4003)
            prefix = {"alerts": "alert", "location": "location", "chat": "chat"}[route]
            stream = f"{prefix}.{alert_id}"
            follows = route != "location" or (staff and alert.owner != user)
        else:
            return Result(close=4004)
        consumer = Consumer(user, staff, route, alert_id, stream, follows)
        self.consumers[conn] = consumer
        result = Result()
        if follows:
            self.groups.setdefault(stream, set()).add(conn)
            head = len(self.streams.get(stream, ()))
            if since is not None and (since > head or head - since > self.replay_limit):
                consumer.last_seq = head
                result.frames.append((conn, {"type": "resync_required", "since": since, "head": head,
                                             "seq": head}))
            else:
                if since is not None:
                    result.frames += [(conn, m) for m in self.streams.get(stream, [])[since:]]
                consumer.last_seq = head
        snapshot = self._snapshot(consumer)
        if snapshot is not None:
            result.frames.append((conn, {**snapshot, "seq": consumer.last_seq}))
        return result

    def disconnect(self, conn: int) -> None:
        consumer = self.consumers.pop(conn, None)
        if consumer is not None and consumer.stream is not None:
            self.groups.get(consumer.stream, set()).discard(conn)

    def receive(self, conn: int, message: dict[str, Any]) -> Result:
        consumer = self.consumers.get(conn)
        if consumer is None:
            return Result()
        kind = message.get("type")
        result = Result()
        try:
            if kind == "ping":
                self._fill(conn, consumer, len(self.streams.get(consumer.stream or "", ())), result)
                result.frames.append((conn, {"type": "pong", "seq": consumer.last_seq}))
                return result
            handler = self._handler(consumer, kind)
            if handler is None:
                raise Refusal("unknown_type", f"this route does not handle {kind!r}", 400)
            reply, repeated = handler(consumer, message, result)
        except Refusal as refusal:
            error: dict[str, Any] = {"type": "error", "code": refusal.code, "message": refusal.message,
                                     "seq": consumer.last_seq}
            if isinstance(message.get("client_msg_id"), str):
                error["client_msg_id"] = message["client_msg_id"]
            result.frames.append((conn, error))
            if refusal.code == "forbidden":
                result.close = 4003
            return result
        produced = reply.get("seqs", {}).get(consumer.stream)
        if isinstance(produced, int) and consumer.follows:
            self._fill(conn, consumer, produced, result)
        cmid = message.get("client_msg_id")
        answer: dict[str, Any]
        if isinstance(cmid, str):
            answer = {"type": "ack", "client_msg_id": cmid, "repeated": repeated, "result": reply}
        else:
            answer = {"type": "success", "result": reply}
        result.frames.append((conn, {**answer, "seq": consumer.last_seq}))
        return result

    # -- HTTP ------------------------------------------------------------------------------------

    def http(self, user: int, method: str, path: str, body: dict[str, Any] | None) -> Result:
        result = Result()
        body = body or {}
        if user not in self.staff:
            result.status, result.body = 401, {"success": False, "code": "unauthenticated"}
            return result
        parts = [p for p in path.split("/") if p]
        try:
            if method == "POST" and parts[-2:] == ["panic", "create"]:
                reply, repeated = self._remember(user, body, "create", result,
                                                 lambda: self._create(user, body, result))
                result.status = 201
            elif method == "POST" and len(parts) == 5 and parts[-1] == "location":
                reply, repeated = self._remember(user, body, "location", result,
                                                 lambda: self._location(user, parts[3], body, "http", result))
            elif method == "POST" and len(parts) == 5 and parts[-1] == "cancel":
                reply, repeated = self._remember(user, body, "status:canceled", result,
                                                 lambda: self._transition(user, parts[3], "canceled", result))
            elif method == "GET" and len(parts) == 4 and parts[2] == "alerts":
                alert = self._visible(user, parts[3])
                result.body = {**alert.as_dict(), "location_history": alert.locations}
                return result
            else:
                raise Refusal("not_found", "no such endpoint", 404)
        except Refusal as refusal:
            result.status = refusal.status
            result.body = {"success": False, "code": refusal.code, "error": refusal.message}
            return result
        result.body = {"success": True, "repeated": repeated, **reply}
        return result

    # -- records ---------------------------------------------------------------------------------

    def stored_records(self) -> list[tuple[str, dict[str, Any]]]:
        """Every record the backend holds, as (kind, record), for the drain's ``stored`` check."""
        records: list[tuple[str, dict[str, Any]]] = []
        for alert in self.alerts.values():
            records.append(("create", {"alert_id": alert.id, "user": alert.owner,
                                       "latitude": alert.latitude, "longitude": alert.longitude,
                                       "client_msg_id": alert.client_msg_id}))
            records += [("location", {"alert_id": alert.id, **loc}) for loc in alert.locations]
            records += [("chat", {"alert_id": alert.id, **chat}) for chat in alert.chats]
            records += [("status", {"alert_id": alert.id, "status": s}) for s in alert.history]
        return records

    # -- internals -------------------------------------------------------------------------------

    def _snapshot(self, consumer: Consumer) -> dict[str, Any] | None:
        if consumer.route == "alerts" and consumer.alert_id is None:
            active = [a.as_dict() for a in self.alerts.values() if a.status in OPEN_STATUSES]
            return {"type": "active_alerts", "alerts": active, "count": len(active)}
        if consumer.route == "alerts" and consumer.alert_id is not None:
            return {"type": "alert_status", "alert": self.alerts[consumer.alert_id].as_dict()}
        if consumer.route == "location" and consumer.alert_id is not None:
            locations = self.alerts[consumer.alert_id].locations
            if locations:
                return {"type": "last_location", "alert_id": consumer.alert_id,
                        "location": locations[-1]}
        return None

    def _handler(self, consumer: Consumer, kind: Any) -> Callable[..., tuple[dict[str, Any], bool]] | None:
        route, alert = consumer.route, consumer.alert_id
        if route == "location" and kind == "location_update":
            return self._ws_location
        if route == "chat" and kind == "chat_message":
            return lambda c, m, r: self._remember(
                c.user, m, "chat", r, lambda: self._chat(c.user, c.alert_id or "", m, r))
        if route == "alerts" and alert is not None and kind == "cancel_alert":
            return lambda c, m, r: self._remember(
                c.user, m, "status:canceled", r,
                lambda: self._transition(c.user, c.alert_id or "", "canceled", r))
        if route == "alerts" and alert is None and kind in CONSOLE_ACTIONS:
            target = CONSOLE_ACTIONS[str(kind)]
            return lambda c, m, r: self._remember(
                c.user, m, f"status:{target}", r,
                lambda: self._transition(c.user, str(m.get("alert_id")), target, r))
        return None

    def _ws_location(self, consumer: Consumer, message: dict[str, Any], result: Result
                     ) -> tuple[dict[str, Any], bool]:
        location = message.get("location")
        if not isinstance(location, dict):
            raise Refusal("invalid_field", "location: must be an object", 400)
        fields = {**location, "client_msg_id": message.get("client_msg_id")}
        return self._remember(consumer.user, message, "location", result,
                              lambda: self._location(consumer.user, consumer.alert_id or "", fields,
                                                     "ws", result))

    def _remember(self, user: int, message: dict[str, Any], kind: str, result: Result,
                  action: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        cmid = message.get("client_msg_id")
        if not isinstance(cmid, str):
            return action(), False
        earlier = self.remembered.get((user, cmid))
        if earlier is not None:
            if earlier[0] != kind:
                raise Refusal("client_msg_id_reused", "client_msg_id already used", 409)
            # A repeat republishes the stored events; listeners drop what they already have.
            for stream, seq in earlier[2].items():
                self._broadcast(stream, self.streams[stream][seq - 1], result)
            return earlier[1], True
        reply = action()
        self.remembered[(user, cmid)] = (kind, reply, reply.get("seqs", {}))
        return reply, False

    def _append(self, stream: str, payload: dict[str, Any], result: Result) -> int:
        events = self.streams.setdefault(stream, [])
        message = {**payload, "seq": len(events) + 1}
        events.append(message)
        self._broadcast(stream, message, result)
        if stream.startswith("user.") and not self.groups.get(stream):
            # Nobody listens on the phone's channel: wake it with a high-priority push (FCM/APNs,
            # ASSUME a push service beside the backend, as emergency apps have).
            user = int(stream[5:])
            if user not in result.pushes:
                result.pushes.append(user)
        return len(events)

    def _broadcast(self, stream: str, message: dict[str, Any], result: Result) -> None:
        seq = message["seq"]
        for conn in sorted(self.groups.get(stream, ())):
            consumer = self.consumers[conn]
            if seq <= consumer.last_seq:
                continue
            if self.drop_rate and self._random() < self.drop_rate:
                self.dropped_events += 1  # lost in a full channel-layer queue
                continue
            if seq > consumer.last_seq + 1:
                if not self.gap_fill:
                    consumer.last_seq = seq  # a plain consumer never notices
                    result.frames.append((conn, message))
                    continue
                self._fill(conn, consumer, seq - 1, result)
            consumer.last_seq = seq
            result.frames.append((conn, message))

    def _fill(self, conn: int, consumer: Consumer, upto: int, result: Result) -> None:
        if consumer.stream is None or not consumer.follows or not self.gap_fill:
            return
        events = self.streams.get(consumer.stream, [])
        for message in events[consumer.last_seq:upto]:
            result.frames.append((conn, message))
        consumer.last_seq = max(consumer.last_seq, min(upto, len(events)))

    def _visible(self, user: int, alert_id: str) -> Alert:
        alert = self.alerts.get(alert_id)
        if alert is None:
            raise Refusal("not_found", "no such alert", 404)
        if alert.owner != user and not self.staff.get(user, False):
            raise Refusal("forbidden", "not a party to this alert", 403)
        return alert

    def _create(self, user: int, body: dict[str, Any], result: Result) -> dict[str, Any]:
        latitude, longitude = body.get("latitude"), body.get("longitude")
        if not isinstance(latitude, (int, float)) or not isinstance(longitude, (int, float)):
            raise Refusal("invalid_field", "latitude and longitude are required", 400)
        alert_id = str(uuid.UUID(int=len(self.alerts) + 1))
        cmid = body.get("client_msg_id") if isinstance(body.get("client_msg_id"), str) else None
        alert = Alert(alert_id, user, "active", float(latitude), float(longitude), cmid)
        self.alerts[alert_id] = alert
        seq = self._append("console", {"type": "new_alert", "alert": alert.as_dict()}, result)
        return {"alert_id": alert_id, "alert": alert.as_dict(), "seqs": {"console": seq}}

    def _location(self, user: int, alert_id: str, location: dict[str, Any], via: str,
                  result: Result) -> dict[str, Any]:
        alert = self._visible(user, alert_id)
        if alert.owner != user:
            raise Refusal("forbidden", "only the owner sends locations", 403)
        if alert.status not in OPEN_STATUSES:
            raise Refusal("alert_closed", f"alert is {alert.status}", 409)
        record = {"latitude": location.get("latitude"), "longitude": location.get("longitude"),
                  "accuracy": location.get("accuracy"), "provider": location.get("provider", ""),
                  "client_msg_id": location.get("client_msg_id"), "via": via,
                  "id": self._locations + 1}
        alert.locations.append(record)
        self._locations += 1
        body = {"type": "location_update", "alert_id": alert_id, "location": record}
        seqs = {f"location.{alert_id}": self._append(f"location.{alert_id}", body, result),
                "console": self._append("console", body, result)}
        return {"location_id": record["id"], "seqs": seqs}

    def _chat(self, user: int, alert_id: str, message: dict[str, Any], result: Result
              ) -> dict[str, Any]:
        alert = self._visible(user, alert_id)
        text = message.get("message")
        if not isinstance(text, str) or not text.strip():
            raise Refusal("invalid_field", "message: is required", 400)
        staff = self.staff.get(user, False)
        self._chats += 1
        chat = {"id": self._chats, "message": text,
                "sender_id": user, "is_staff": staff, "client_msg_id": message.get("client_msg_id")}
        alert.chats.append(chat)
        seqs = {f"chat.{alert_id}": self._append(f"chat.{alert_id}", {"type": "chat_message", **chat},
                                                 result)}
        if staff and alert.owner != user:
            stream = f"user.{alert.owner}"
            seqs[stream] = self._append(stream, {"type": "operator_message", "alert_id": alert_id,
                                                 "message": chat, "operator": {"id": user}}, result)
        return {"message_id": chat["id"], "seqs": seqs}

    def _transition(self, user: int, alert_id: str, target: str, result: Result) -> dict[str, Any]:
        sources, who, console_event = TRANSITIONS[target]
        alert = self.alerts.get(alert_id)
        if alert is None:
            raise Refusal("not_found", f"no alert {alert_id}", 404)
        staff = self.staff.get(user, False)
        if (who == "staff" and not staff) or (who == "owner" and alert.owner != user):
            raise Refusal("forbidden", f"not allowed to set {target}", 403)
        if alert.status not in sources:
            raise Refusal("invalid_transition", f"alert is {alert.status}; cannot become {target}", 409)
        alert.status = target
        alert.history.append(target)
        if target == "acknowledged":
            alert.operator = user
        snapshot = alert.as_dict()
        seqs = {
            "console": self._append("console", {"type": console_event, "alert": snapshot,
                                                "operator": {"id": user}}, result),
            f"user.{alert.owner}": self._append(f"user.{alert.owner}", {
                "type": "alert_status_update", "alert": snapshot, "message": target}, result),
            f"alert.{alert_id}": self._append(f"alert.{alert_id}", {"type": "alert_updated",
                                                                    "alert": snapshot}, result),
        }
        return {"alert": snapshot, "seqs": seqs}
