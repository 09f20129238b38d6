"""Virtual dispatchers: they watch the console, take alerts, acknowledge, chat and resolve.

An operator sits on a wired, reliable link (a fixed small latency, no outages) and follows a
simple script per alert it takes, with delays drawn from its own generator: join the alert's chat
at once, acknowledge after ``ack_delay``, greet the person in chat, answer each of their messages
after ``reply_delay``, and resolve ``resolve_after`` after acknowledging. It takes at most
``max_alerts`` open alerts at a time; the first free operator claims a new alert (the console
shows who has it), the others leave it. Everything it originates is recorded in the ledger with an
origin id ``operator-<j>:<n>``, and everything it receives is matched to its origin through the
:class:`Correlator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from simulator import correlate
from simulator.correlate import Correlator
from simulator.ledger import Ledger
from simulator.transport.modelled import Transport

CONSOLE = "console"
REPLIES = (
    "We have your location. Stay where you are if it is safe.",
    "Help is on the way. Can you tell me what is happening?",
    "I am still here with you. Keep the phone with you.",
    "Responders are a few minutes away.",
    "Are you injured? Answer when you can.",
)


@dataclass(frozen=True)
class OperatorConfig:
    """How dispatchers behave. Delays are lognormal: (median seconds, sigma)."""

    max_alerts: int = 3
    ack_delay: tuple[float, float] = (20.0, 0.5)  # ASSUME: a dispatcher reads and claims in ~20 s
    reply_delay: tuple[float, float] = (15.0, 0.5)  # ASSUME: typing a short answer
    resolve_after: tuple[float, float] = (600.0, 0.4)  # ASSUME: ~10 min from acknowledge
    link_latency_s: float = 0.02  # a wired dashboard


@dataclass
class Case:
    alert_id: str
    owner: str
    open: bool = True


class Operator:
    """One virtual dispatcher (an :class:`~simulator.transport.modelled.Endpoint`)."""

    def __init__(self, index: int, user_id: int, env: simpy.Environment, wire: Transport,
                 ledger: Ledger, correlator: Correlator, rng: np.random.Generator,
                 config: OperatorConfig, directory: dict[int, str], claims: dict[str, str],
                 use_ids: bool) -> None:
        self.name = f"operator-{index}"
        self.user_id = user_id
        self.env, self.wire, self.ledger, self.correlator = env, wire, ledger, correlator
        self.rng, self.config = rng, config
        self.directory = directory  # user id -> actor name
        self.claims = claims  # alert id -> operator name (shared by all operators)
        self.use_ids = use_ids
        self.cases: dict[str, Case] = {}
        self._sent = 0
        self._connected: set[str] = set()
        self._waiting: dict[str, list[tuple[dict[str, Any], str]]] = {}
        self.closing = False  # the run is draining: originate nothing new

    # -- endpoint --------------------------------------------------------------------------------

    def link_delay(self, size: int, up: bool, now: float) -> float | None:
        return self.config.link_latency_s

    def on_connected(self, channel: str, now: float) -> None:
        self._connected.add(channel)
        self.ledger.connection(now, self.name, channel, "open")
        for message, origin in self._waiting.pop(channel, []):
            self._transmit(channel, message, origin)

    def on_closed(self, channel: str, code: int, now: float) -> None:
        self._connected.discard(channel)
        self.ledger.connection(now, self.name, channel, "closed", str(code))
        if channel == CONSOLE or self.cases.get(channel.partition(":")[2], Case("", "", False)).open:
            self.wire.at(1.0, lambda: self._open(channel))

    def on_http(self, request_id: int, status: int, body: dict[str, Any], now: float) -> None:
        return None

    def on_push(self, now: float) -> None:
        return None  # the dashboard is always connected

    def on_frame(self, channel: str, message: dict[str, Any], now: float) -> None:
        kind = message.get("type")
        seq = message.get("seq") if isinstance(message.get("seq"), int) else None
        stream = channel
        if kind == "new_alert":
            alert = message["alert"]
            self._received(correlate.create_key(alert["user"], alert["latitude"], alert["longitude"]),
                           now, stream, seq)
            self._consider(alert)
        elif kind == "location_update":
            location = message["location"]
            self._received(correlate.location_key(message["alert_id"], location["latitude"],
                                                  location["longitude"]), now, stream, seq)
        elif kind == "alert_canceled":
            alert = message["alert"]
            self._received(correlate.status_key(alert["id"], "canceled"), now, stream, seq)
            self._close_case(alert["id"])
        elif kind == "chat_message" and not message.get("is_staff"):
            self._received(correlate.chat_key(message["message"]), now, stream, seq)
            alert_id = channel.partition(":")[2]
            if alert_id in self.cases and self.cases[alert_id].open:
                self.wire.at(self._delay(self.config.reply_delay), lambda: self._reply(alert_id))

    # -- behaviour -------------------------------------------------------------------------------

    def start(self) -> None:
        self._open(CONSOLE)

    def _open(self, channel: str) -> None:
        if channel in self._connected:
            return
        self.ledger.connection(self.env.now, self.name, channel, "connecting")
        if channel == CONSOLE:
            self.wire.open(self, CONSOLE, "/ws/alerts/", None)
        else:
            alert_id = channel.partition(":")[2]
            # The dashboard always asks for the chat history (the reference backend keeps it).
            self.wire.open(self, channel, f"/ws/chat/{alert_id}/", 0)

    def _consider(self, alert: dict[str, Any]) -> None:
        alert_id = alert["id"]
        open_cases = sum(1 for case in self.cases.values() if case.open)
        if alert_id in self.claims or open_cases >= self.config.max_alerts:
            return
        self.claims[alert_id] = self.name
        self.cases[alert_id] = Case(alert_id, self.directory.get(alert["user"], f"user-{alert['user']}"))
        self._open(f"chat:{alert_id}")  # read the conversation from the moment the alert is taken
        self.wire.at(self._delay(self.config.ack_delay), lambda: self._acknowledge(alert_id))

    def _acknowledge(self, alert_id: str) -> None:
        case = self.cases[alert_id]
        if not case.open or self.closing:
            return
        origin = self._originate("status_update", case.owner)
        self.correlator.register(correlate.status_key(alert_id, "acknowledged"), origin)
        self._send(CONSOLE, {"type": "acknowledge_alert", "alert_id": alert_id}, origin)
        self.wire.at(1.0, lambda: self._reply(alert_id))
        self.wire.at(self._delay(self.config.resolve_after), lambda: self._resolve(alert_id))

    def _reply(self, alert_id: str) -> None:
        case = self.cases.get(alert_id)
        if case is None or not case.open or self.closing:
            return
        origin = self._originate("chat_from_operator", case.owner)
        text = correlate.tagged(REPLIES[int(self.rng.integers(len(REPLIES)))], origin)
        self.correlator.register(correlate.chat_key(text), origin)
        self._send(f"chat:{alert_id}", {"type": "chat_message", "message": text}, origin)

    def _resolve(self, alert_id: str) -> None:
        case = self.cases.get(alert_id)
        if case is None or not case.open or self.closing:
            return
        origin = self._originate("status_update", case.owner)
        self.correlator.register(correlate.status_key(alert_id, "resolved"), origin)
        self._send(CONSOLE, {"type": "resolve_alert", "alert_id": alert_id, "notes": "resolved"},
                   origin)
        self._close_case(alert_id)

    def _close_case(self, alert_id: str) -> None:
        case = self.cases.get(alert_id)
        if case is not None and case.open:
            case.open = False
            channel = f"chat:{alert_id}"
            self.wire.at(5.0, lambda: self._leave(channel))

    def _leave(self, channel: str) -> None:
        self._connected.discard(channel)
        self.wire.close(self, channel)

    # -- plumbing --------------------------------------------------------------------------------

    def _originate(self, kind: str, recipient: str) -> str:
        self._sent += 1
        origin = f"{self.name}:{self._sent}"
        self.ledger.originated(self.env.now, origin, kind, self.name, recipient)
        return origin

    def _send(self, channel: str, message: dict[str, Any], origin: str) -> None:
        if self.use_ids:
            message = {**message, "client_msg_id": origin}
        if channel in self._connected:
            self._transmit(channel, message, origin)
        else:
            self._waiting.setdefault(channel, []).append((message, origin))

    def _transmit(self, channel: str, message: dict[str, Any], origin: str) -> None:
        self.ledger.attempt(self.env.now, origin, "ws", channel, "open")
        self.wire.send(self, channel, message)

    def _received(self, key: correlate.Key, now: float, stream: str, seq: int | None) -> None:
        origin = self.correlator.lookup(key)
        self.ledger.received(now, origin if origin is not None else f"unknown:{key!r}", self.name,
                             stream, seq)

    def _delay(self, spec: tuple[float, float]) -> float:
        median, sigma = spec
        return float(median * np.exp(sigma * self.rng.standard_normal()))
