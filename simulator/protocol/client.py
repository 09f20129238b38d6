"""The Beacon phone client as a sans-I/O state machine.

The client owns four channels — ``user`` (always wanted), and ``alert``, ``location``, ``chat``
(wanted while an alert is open) — each ``closed``, ``connecting`` or ``open``. Inputs are method
calls carrying ``now`` (seconds, any clock); outputs are :mod:`~simulator.protocol.actions` drained
with :meth:`BeaconClient.take_actions`, plus :meth:`next_deadline`, after which the driver must call
:meth:`handle_timeout`. The client never reads a clock, sleeps, or touches a socket; its only
randomness (backoff jitter) comes from the generator it is given.

Timers, all in one place: the heartbeat (``ping`` on the user channel every ``heartbeat_s``; with
``expects_pong``, ``missed_pongs_dead`` unanswered pings declare the link dead and every channel
is closed and reopened), per-channel reconnects (``backoff_delay``), the location cadence during an
alert (``WantFix``), the panic-create retry, and the HTTP fallback for locations that the socket
could not carry.

How a message leaves: on an open channel it is sent at once. Otherwise the ``beacon-1.0`` policy
drops it (``Dropped``) — the app as shipped has no outbox — while ``resilient`` keeps it in the
outbox, resends it on every (re)connect of its channel until the ``ack`` arrives, and may post a
location over HTTP (same ``client_msg_id``, so the backend stores it once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.protocol.actions import (
    ALERT,
    CHANNELS,
    CHAT,
    LOCATION,
    USER,
    Acked,
    Action,
    Close,
    Dropped,
    GaveUp,
    HttpRequest,
    Open,
    Received,
    Send,
    WantFix,
)
from simulator.protocol.policies import Policy, backoff_delay

CLOSED, CONNECTING, OPEN = "closed", "connecting", "open"
CLOSED_STATUSES = frozenset({"resolved", "canceled", "false_alarm"})
REPLY_TYPES = frozenset({"pong", "ack", "success", "error", "resync_required", "active_alerts",
                         "alert_status", "last_location"})
APPLICATION_TYPES = frozenset({"alert_status_update", "operator_message", "chat_message",
                               "alert_updated"})


@dataclass(frozen=True, slots=True)
class Fix:
    """A position report as the client sends it (coordinates already rounded to 7 places)."""

    latitude: float
    longitude: float
    accuracy: float
    provider: str = "gps"
    speed: float | None = None
    heading: float | None = None


@dataclass(slots=True)
class Channel:
    name: str
    status: str = CLOSED
    wanted: bool = False
    ever_opened: bool = False
    attempt: int = 0
    retry_at: float | None = None
    last_seq: int | None = None
    closed_since: float = 0.0
    gave_up: bool = False


@dataclass(slots=True)
class Pending:
    """An outbox entry: kept until acked."""

    origin_id: str
    channel: str
    message: dict[str, Any]
    since: float
    http_path: str | None = None
    http_body: dict[str, Any] | None = None
    http_sent: bool = False


class BeaconClient:
    """One phone's Beacon client. See the module docstring for the rules."""

    def __init__(self, policy: Policy, user_id: int, random: Callable[[], float]) -> None:
        self.policy = policy
        self.user_id = user_id
        self._random = random
        self.channels = {name: Channel(name) for name in CHANNELS}
        self._channel_list = tuple(self.channels.values())
        self._actions: list[Action] = []
        self.network_up = True
        self.allowed = True  # the OS lets the app run and use the network
        self.powered = True
        self.alert_id: str | None = None
        self.alert_open = False
        self.outbox: dict[str, Pending] = {}
        self._next_ping: float | None = None
        self._unanswered = 0
        self._next_fix: float | None = None
        self.location_interval_s = policy.location_interval_s
        self._create: Pending | None = None
        self._create_tries = 0
        self._create_at: float | None = None
        self._create_request: int | None = None
        self._requests = 0
        self._http: dict[int, str] = {}  # request id -> origin id (fallback posts)
        self._shown: set[tuple[Any, ...]] = set()
        self._first_use: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # lazy opens (no outbox)

    # -- driver interface ------------------------------------------------------------------------

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    @property
    def has_actions(self) -> bool:
        """Whether :meth:`take_actions` would return anything (a cheap check for drivers)."""
        return bool(self._actions)

    @property
    def settled(self) -> bool:
        """Nothing of this client is in flight or waiting: no unacked message, no pending alert
        create, and, while it may use the network, every channel it wants is open (so whatever
        the backend holds for it has been replayed). For a drain that stops once all is quiet."""
        if self.outbox or self._create is not None:
            return False
        if not (self.powered and self.allowed):
            return True
        return all(ch.status == OPEN for ch in self._channel_list if ch.wanted)

    def next_deadline(self) -> float | None:
        # The earliest of the timers (called after every input: written out, no temporary lists).
        best = self._next_ping
        t = self._next_fix
        if t is not None and (best is None or t < best):
            best = t
        t = self._create_at
        if t is not None and (best is None or t < best):
            best = t
        for channel in self._channel_list:
            t = channel.retry_at
            if t is not None and (best is None or t < best):
                best = t
        if self.outbox and self.policy.http_fallback_after_s is not None:
            t = self._fallback_due()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timeout(self, now: float) -> None:
        for channel in self.channels.values():
            if channel.retry_at is not None and channel.retry_at <= now:
                channel.retry_at = None
                self._open(channel, now)
        if self._next_ping is not None and self._next_ping <= now:
            self._heartbeat(now)
        if self._next_fix is not None and self._next_fix <= now:
            self._next_fix = now + self.location_interval_s
            self._actions.append(WantFix())
        if self._create_at is not None and self._create_at <= now:
            self._create_at = None
            self._post_create(now)
        self._http_fallback(now)

    # -- lifecycle inputs ------------------------------------------------------------------------

    def start(self, now: float) -> None:
        user = self.channels[USER]
        user.wanted = True
        self._open(user, now)

    def connected(self, channel_name: str, now: float) -> None:
        channel = self.channels[channel_name]
        channel.status = OPEN
        channel.ever_opened = True
        channel.attempt = 0
        channel.retry_at = None
        if channel_name == USER:
            self._next_ping = now + self.policy.heartbeat_s
            self._unanswered = 0
        if self.policy.outbox:
            for pending in list(self.outbox.values()):
                if pending.channel == channel_name:
                    self._actions.append(Send(channel_name, pending.message, pending.origin_id))
        for origin_id, message in self._first_use.pop(channel_name, []):
            self._actions.append(Send(channel_name, message, origin_id))

    def closed(self, channel_name: str, now: float, code: int = 1006) -> None:
        channel = self.channels[channel_name]
        if channel.status == CLOSED and channel.retry_at is not None:
            return
        channel.status = CLOSED
        channel.closed_since = now
        if not channel.ever_opened:  # its first open failed: what waited for it is lost
            for origin_id, _message in self._first_use.pop(channel_name, []):
                self._actions.append(Dropped(origin_id, f"{channel_name} channel never opened",
                                             channel_name))
        if channel_name == USER:
            self._next_ping = None
        if code in (4001, 4003, 4004):
            channel.wanted = False  # refused: retrying would be refused again
            self._actions.append(GaveUp(channel_name, channel.attempt))
            return
        self._schedule_reconnect(channel, now)

    def network_changed(self, up: bool, now: float) -> None:
        was_up, self.network_up = self.network_up, up
        if not self.policy.watch_connectivity or up == was_up:
            return
        if not up:
            self._close_all(now, "network lost")  # dead sockets: no close frame gets through
            return
        self._reopen_now(now)

    def lifecycle_changed(self, allowed: bool, now: float) -> None:
        """The OS let the app run (True) or suspended/killed/dozed it (False)."""
        was, self.allowed = self.allowed, allowed
        if allowed == was:
            return
        if not allowed:
            self._close_all(now, "app suspended")
            return
        self._reopen_now(now)

    def _close_all(self, now: float, reason: str) -> None:
        """Close every channel and cancel their retries; they reopen when conditions allow."""
        for channel in self.channels.values():
            if channel.status != CLOSED:
                self._actions.append(Close(channel.name, 1001, reason))
                channel.status = CLOSED
                channel.closed_since = now
            channel.retry_at = None
        self._next_ping = None

    def power_off(self, now: float) -> None:
        self.lifecycle_changed(False, now)
        self.powered = False
        self._next_fix = None
        self._create_at = None

    def set_location_interval(self, seconds: float, now: float) -> None:
        self.location_interval_s = seconds
        if self._next_fix is not None:
            self._next_fix = min(self._next_fix, now + seconds)

    # -- user inputs -----------------------------------------------------------------------------

    def panic(self, now: float, fix: Fix, origin_id: str, battery: float | None = None) -> None:
        body: dict[str, Any] = {"latitude": fix.latitude, "longitude": fix.longitude,
                                "accuracy": fix.accuracy, "provider": fix.provider,
                                "alert_type": "panic_button", "priority": 4}
        if battery is not None:
            body["battery_level"] = round(battery, 1)
        if self.policy.client_msg_ids:
            body["client_msg_id"] = origin_id
        self._create = Pending(origin_id, "http", {}, now, "/api/auth/panic/create/", body)
        self._create_tries = 0
        self._post_create(now)

    def location_fix(self, now: float, fix: Fix | None, origin_id: str,
                     battery: float | None = None) -> None:
        if fix is None or not self.alert_open or self.alert_id is None:
            return
        location: dict[str, Any] = {"latitude": fix.latitude, "longitude": fix.longitude,
                                    "accuracy": fix.accuracy, "provider": fix.provider}
        if fix.speed is not None:
            location["speed"] = fix.speed
        if fix.heading is not None:
            location["heading"] = fix.heading
        if battery is not None:
            location["battery_level"] = round(battery, 1)
        message: dict[str, Any] = {"type": "location_update", "location": location, "timestamp": now}
        http_body = {**location}
        if self.policy.client_msg_ids:
            message["client_msg_id"] = origin_id
            http_body["client_msg_id"] = origin_id
        path = f"/api/auth/alerts/{self.alert_id}/location/"
        self._deliver(LOCATION, message, origin_id, now, http_path=path, http_body=http_body)
        if self.policy.location_always_http and self.network_up and self.allowed:
            self._request("POST", path, http_body, origin_id)

    def chat(self, now: float, text: str, origin_id: str) -> None:
        if self.alert_id is None:
            return
        message: dict[str, Any] = {"type": "chat_message", "message": text}
        if self.policy.client_msg_ids:
            message["client_msg_id"] = origin_id
        self._deliver(CHAT, message, origin_id, now)

    def cancel(self, now: float, origin_id: str) -> None:
        if self.alert_id is None or not self.alert_open:
            return
        message: dict[str, Any] = {"type": "cancel_alert"}
        body: dict[str, Any] = {}
        if self.policy.client_msg_ids:
            message["client_msg_id"] = origin_id
            body["client_msg_id"] = origin_id
        self._deliver(ALERT, message, origin_id, now,
                      http_path=f"/api/auth/alerts/{self.alert_id}/cancel/", http_body=body)

    # -- network inputs --------------------------------------------------------------------------

    def frame_received(self, channel_name: str, message: dict[str, Any], now: float) -> None:
        channel = self.channels[channel_name]
        kind = message.get("type")
        seq = message.get("seq")
        if isinstance(seq, int) and (kind not in REPLY_TYPES or channel.last_seq is None):
            # Events advance the resume point; the first reply on a fresh channel sets it (the
            # server stamps replies with the last seq it delivered), so even a channel that has
            # seen no event yet resumes from where it was.
            channel.last_seq = seq if channel.last_seq is None else max(channel.last_seq, seq)
        if channel_name == USER:
            self._unanswered = 0  # the user channel is alive (other channels prove nothing about it)
        if kind == "ack":
            pending = self.outbox.pop(str(message.get("client_msg_id")), None)
            if pending is not None:
                self._actions.append(Acked(pending.origin_id))
        elif kind == "resync_required":
            channel.last_seq = message.get("head") if isinstance(message.get("head"), int) else None
            if self.alert_id is not None:
                self._request("GET", f"/api/auth/alerts/{self.alert_id}/", None, None)
        elif kind in APPLICATION_TYPES:
            key = _display_key(message)
            if key not in self._shown:  # the app shows a message once, whichever channel brought it
                self._shown.add(key)
                self._actions.append(Received(channel_name, message))
            status = _status_of(message)
            if status in CLOSED_STATUSES and _alert_of(message) == self.alert_id:
                self._alert_closed(now)
        elif kind == "alert_status" and _status_of(message) in CLOSED_STATUSES:
            self._alert_closed(now)

    def http_response(self, request_id: int, status: int, body: dict[str, Any] | None,
                      now: float) -> None:
        origin_id = self._http.pop(request_id, None)
        if request_id == self._create_request:
            self._create_request = None
            self._create_answered(status, body or {}, now)
            return
        if origin_id is not None and 200 <= status < 300:
            pending = self.outbox.pop(origin_id, None)
            if pending is not None:
                self._actions.append(Acked(origin_id))
        elif origin_id is not None and status in (403, 404, 409) and origin_id in self.outbox:
            # Final: the alert is closed or not ours; no retry can succeed.
            self.outbox.pop(origin_id)
            self._actions.append(Dropped(origin_id, f"refused over HTTP ({status})"))
            if status == 409:
                self._alert_closed(now)
        elif origin_id is not None and origin_id in self.outbox:
            pending = self.outbox[origin_id]
            pending.http_sent = False  # try the fallback again, a full interval later
            pending.since = now
        if body and isinstance(body.get("status"), str) and body.get("status") in CLOSED_STATUSES:
            self._alert_closed(now)

    # -- internals -------------------------------------------------------------------------------

    def _open(self, channel: Channel, now: float) -> None:
        if channel.status != CLOSED or not self.allowed or not self.powered:
            return
        if self.policy.watch_connectivity and not self.network_up:
            return
        path = self._path(channel.name)
        if path is None:
            return
        if self.policy.attempt_resets_on_connect_try:
            channel.attempt = 0
        since = None
        if self.policy.resume_since and channel.name != LOCATION:  # the phone never follows location
            # Never seen a seq on this channel: ask for the whole backlog.
            since = channel.last_seq if channel.last_seq is not None else 0
        channel.status = CONNECTING
        self._actions.append(Open(channel.name, path, since))

    def _path(self, name: str) -> str | None:
        if name == USER:
            return f"/ws/user/{self.user_id}/"
        if self.alert_id is None:
            return None
        prefix = {ALERT: "alerts", LOCATION: "location", CHAT: "chat"}[name]
        return f"/ws/{prefix}/{self.alert_id}/"

    def _reopens(self, channel: Channel) -> bool:
        return channel.name == USER or self.policy.reopen_all_channels

    def _schedule_reconnect(self, channel: Channel, now: float) -> None:
        channel.retry_at = None
        if not channel.wanted or not self._reopens(channel) or not self.allowed or not self.powered:
            return
        if self.policy.watch_connectivity and not self.network_up:
            return  # reopened when connectivity returns
        channel.attempt += 1
        limit = self.policy.max_attempts
        if limit is not None and channel.attempt > limit:
            channel.gave_up = True
            self._actions.append(GaveUp(channel.name, channel.attempt - 1))
            return
        channel.retry_at = now + backoff_delay(self.policy, channel.attempt, self._random())

    def _reopen_now(self, now: float) -> None:
        for channel in self.channels.values():
            if channel.wanted and channel.status == CLOSED and (
                    self._reopens(channel) or not channel.ever_opened):
                channel.attempt = 0
                channel.retry_at = None
                self._open(channel, now)

    def _heartbeat(self, now: float) -> None:
        user = self.channels[USER]
        if user.status != OPEN:
            self._next_ping = None
            return
        if self.policy.expects_pong and self._unanswered >= self.policy.missed_pongs_dead:
            for channel in self.channels.values():
                if channel.status != CLOSED:
                    self._actions.append(Close(channel.name, 1001, "pong timeout"))
                    channel.status = CLOSED
                    channel.closed_since = now
                    self._schedule_reconnect(channel, now)
            self._next_ping = None
            return
        self._unanswered += 1
        self._actions.append(Send(USER, {"type": "ping", "timestamp": now}))
        self._next_ping = now + self.policy.heartbeat_s

    def _deliver(self, name: str, message: dict[str, Any], origin_id: str, now: float,
                 http_path: str | None = None, http_body: dict[str, Any] | None = None) -> None:
        channel = self.channels[name]
        if self.policy.outbox:
            self.outbox[origin_id] = Pending(origin_id, name, message, now, http_path, http_body)
        if channel.status == OPEN:
            self._actions.append(Send(name, message, origin_id))
            return
        if not channel.ever_opened and not channel.gave_up:
            # Opened lazily, on first use; what is sent meanwhile goes out once it opens
            # (connect().then(send)). Only a channel that was open and closed drops sends.
            if channel.status == CLOSED:
                channel.wanted = True
                self._open(channel, now)
            if not self.policy.outbox:
                self._first_use.setdefault(name, []).append((origin_id, message))
            return
        if not self.policy.outbox:
            self._actions.append(Dropped(origin_id, f"{name} channel {channel.status}", name))

    def _fallback_due(self) -> float | None:
        after = self.policy.http_fallback_after_s
        if after is None or not self.outbox or not (self.network_up and self.allowed and self.powered):
            return None
        due = [p.since + after for p in self.outbox.values()
               if p.http_path is not None and not p.http_sent]
        return min(due) if due else None

    def _http_fallback(self, now: float) -> None:
        after = self.policy.http_fallback_after_s
        if after is None or not self.network_up or not self.allowed or not self.powered:
            return
        for pending in self.outbox.values():
            if pending.http_path is None or pending.http_sent or pending.since + after > now:
                continue
            if self.channels[pending.channel].status == OPEN:
                pending.since = now  # the socket is back; give the resend a chance first
                continue
            pending.http_sent = True
            self._request("POST", pending.http_path, pending.http_body, pending.origin_id)

    def _request(self, method: str, path: str, body: dict[str, Any] | None,
                 origin_id: str | None) -> int:
        self._requests += 1
        if origin_id is not None:
            self._http[self._requests] = origin_id
        self._actions.append(HttpRequest(self._requests, method, path, body, origin_id))
        return self._requests

    def _post_create(self, now: float) -> None:
        create = self._create
        if create is None or not self.powered:
            return
        self._create_tries += 1
        assert create.http_path is not None
        self._create_request = self._request("POST", create.http_path, create.http_body,
                                             create.origin_id)

    def _create_answered(self, status: int, body: dict[str, Any], now: float) -> None:
        create = self._create
        if create is None:
            return
        alert_id = body.get("alert_id")
        if 200 <= status < 300 and isinstance(alert_id, str):
            self._create = None
            self._actions.append(Acked(create.origin_id))
            self._alert_opened(alert_id, now)
            return
        if self._create_tries >= self.policy.create_max_tries:
            self._create = None
            self._actions.append(Dropped(create.origin_id, f"create failed {self._create_tries}x"))
            return
        if self.policy.backoff == "linear":
            delay = self.policy.create_retry_s
        else:
            delay = backoff_delay(self.policy, self._create_tries, self._random())
        self._create_at = now + delay

    def _alert_opened(self, alert_id: str, now: float) -> None:
        self.alert_id = alert_id
        self.alert_open = True
        self._next_fix = now + self.location_interval_s
        for name in (ALERT, LOCATION, CHAT):
            channel = self.channels[name]
            channel.ever_opened = False
            channel.gave_up = False
            channel.last_seq = None
            channel.wanted = self.policy.reopen_all_channels  # beacon-1.0: lazily, on first use
            if channel.wanted:
                self._open(channel, now)

    def _alert_closed(self, now: float) -> None:
        if not self.alert_open:
            return
        self.alert_open = False
        self._next_fix = None
        for name in (ALERT, LOCATION, CHAT):
            channel = self.channels[name]
            channel.wanted = False
            channel.retry_at = None
            if channel.status != CLOSED:
                self._actions.append(Close(name, 1000, "alert closed"))
                channel.status = CLOSED
        for name in (ALERT, LOCATION, CHAT):
            for origin_id, _message in self._first_use.pop(name, []):
                self._actions.append(Dropped(origin_id, "alert closed before delivery", name))
        for origin_id in [o for o, p in self.outbox.items() if p.channel in (ALERT, LOCATION, CHAT)]:
            pending = self.outbox.pop(origin_id)
            self._actions.append(Dropped(pending.origin_id, "alert closed before delivery"))


def _status_of(message: dict[str, Any]) -> str | None:
    alert = message.get("alert")
    if isinstance(alert, dict) and isinstance(alert.get("status"), str):
        return str(alert["status"])
    return None


def _alert_of(message: dict[str, Any]) -> str | None:
    alert = message.get("alert")
    if isinstance(alert, dict) and alert.get("id") is not None:
        return str(alert["id"])
    return None


def _display_key(message: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two frames the same message on the screen (chat id, or alert and status)."""
    kind = message.get("type")
    if kind == "operator_message" and isinstance(message.get("message"), dict):
        return ("chat", message["message"].get("id"), message["message"].get("message"))
    if kind == "chat_message":
        return ("chat", message.get("id"), message.get("message"))
    return ("status", _alert_of(message), _status_of(message))
