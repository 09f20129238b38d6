"""One virtual phone: the device models, the Beacon client and the wire, wired together.

The phone is where the model meets the protocol. It owns the device processes (network,
lifecycle, battery, mobility, the user's schedule), feeds their changes to the sans-I/O
:class:`~simulator.protocol.client.BeaconClient`, executes the client's actions on the wire, and
writes what happened to the ledger. It decides nothing itself: behaviour lives in the device
models and the client policy, delivery in the transport.

How the OS shapes the link: while the network is down, or the phone is off, or Android Doze holds
the app outside a maintenance window, the link is a blackhole (``link_delay`` is None) — the
backend sees a half-open socket, as with a real phone. iOS suspension closes the sockets (the OS
sends the FIN, so the backend learns at once) and the app's timers stop until it runs again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from simulator import correlate
from simulator.correlate import Correlator
from simulator.device.battery import Battery, DeviceModel
from simulator.device.lifecycle import AppState, Lifecycle, LifecycleConfig, LifecycleStatus
from simulator.device.mobility import Area, GaussMarkov, Gps, RandomWaypoint, Sky, TravelMode
from simulator.device.network import Network, NetworkConfig, NetworkState, transfer_delay
from simulator.device.radio import RADIO_MODELS, Radio, RadioModel
from simulator.device.user import Chatter, UserConfig, panic_times
from simulator.ledger import OPERATORS, Ledger
from simulator.protocol.actions import (
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
from simulator.protocol.client import BeaconClient, Fix
from simulator.protocol.policies import Policy
from simulator.rng import Actor, Concern, generator
from simulator.transport.modelled import Transport

SKY_BY_CAUSE: dict[str, Sky] = {"tunnel": "tunnel", "elevator": "indoor"}
BATTERY_READING_S = 60.0  # the shortest spacing of battery readings taken at network/lifecycle changes


def radio_for(kind: str) -> RadioModel:
    """The RRC model of a network kind (EDGE phones use the 3G state machine: ASSUME)."""
    return RADIO_MODELS["3g" if kind == "edge" else kind]


@dataclass(frozen=True)
class PhoneSpec:
    """Everything that makes phone ``index`` what it is (drawn by the fleet from the profile)."""

    index: int
    user_id: int
    device: DeviceModel
    battery_pct: float
    network: NetworkConfig
    lifecycle: LifecycleConfig
    user: UserConfig
    area: Area
    travel: TravelMode
    mobility: str  # "random_waypoint" | "gauss_markov"
    sky: Sky
    policy: Policy


class Phone:
    """A phone in the fleet (an :class:`~simulator.transport.modelled.Endpoint`)."""

    def __init__(self, spec: PhoneSpec, seed: int, env: simpy.Environment, wire: Transport,
                 ledger: Ledger, correlator: Correlator, horizon_s: float) -> None:
        self.spec = spec
        self.name = f"phone-{spec.index}"
        self.user_id = spec.user_id
        self.env, self.wire, self.ledger, self.correlator = env, wire, ledger, correlator
        k = spec.index

        def rng(concern: Concern) -> np.random.Generator:
            return generator(seed, Actor.DEVICE, k, concern)

        self._link_rng = rng(Concern.LINK)
        self._congestible = bool(spec.network.congestion)  # any crowding windows at all
        client_rng = rng(Concern.CLIENT)
        self.client = BeaconClient(spec.policy, spec.user_id, client_rng.random)
        self.network = Network(env, rng(Concern.NETWORK), spec.network, self._network_changed)
        self.radio = Radio(radio_for(self.network.state.preset.kind))
        self.battery = Battery.for_device(env, spec.device, spec.battery_pct, self.radio,
                                          self._battery_event)
        self.lifecycle = Lifecycle(env, rng(Concern.LIFECYCLE), spec.device.os, spec.lifecycle,
                                   self._lifecycle_changed, screen_listener=self._screen)
        # Where the phone is matters only when it takes a fix (during an alert, for most phones
        # never): the trajectory and the location provider are built on first use. Each has its
        # own generator and starts at time 0 whenever it is built, so this changes no draw.
        self._seed = seed
        self._mobility: RandomWaypoint | GaussMarkov | None = None
        self._gps: Gps | None = None
        if spec.mobility != "gauss_markov" and not spec.travel.min_speed_mps > 0:
            raise ValueError("random waypoint needs 0 < min_speed_mps <= max speed (Yoon et al. 2003)")
        user_rng = rng(Concern.USER)
        panic_rng, chat_rng = user_rng.spawn(2)
        self.panics = panic_times(spec.user, panic_rng, horizon_s)
        self.chatter = Chatter(spec.user, chat_rng)
        self.horizon_s = horizon_s
        self._sent = 0
        self._timer_at: float | None = None
        self._asleep = False  # app timers stopped (iOS suspended, killed, Doze idle, off)
        self._blackhole = False  # the app's traffic goes nowhere (Doze idle, powered off)
        self._creating: str | None = None  # origin id of the panic whose alert is being created
        self._alert_for: str | None = None  # the open alert this phone streams for
        self.closing = False  # the run is draining: originate nothing new
        self._half_open: set[str] = set()  # channels whose link died unnoticed
        self._battery_read_at = -math.inf  # when the battery level was last written to the ledger

    @property
    def mobility(self) -> RandomWaypoint | GaussMarkov:
        """The phone's trajectory (built on first use)."""
        if self._mobility is None:
            spec = self.spec
            rng = generator(self._seed, Actor.DEVICE, spec.index, Concern.MOBILITY)
            if spec.mobility == "gauss_markov":
                self._mobility = GaussMarkov(spec.area, spec.travel, rng)
            else:
                self._mobility = RandomWaypoint(spec.area, spec.travel, rng)
        return self._mobility

    @property
    def gps(self) -> Gps:
        """The phone's location provider (built on first use)."""
        if self._gps is None:
            self._gps = Gps(generator(self._seed, Actor.DEVICE, self.spec.index, Concern.GPS))
        return self._gps

    # -- start and stop --------------------------------------------------------------------------

    def start(self) -> None:
        now = self.env.now
        self.ledger.state(now, self.name, "os", str(self.spec.device.os))
        self.ledger.state(now, self.name, "device_model", self.spec.device.name)
        self.ledger.state(now, self.name, "power", "on")
        self.ledger.state(now, self.name, "battery", round(self.battery.level(now), 3))
        self.ledger.state(now, self.name, "network", self.network.state.preset.kind)
        self.network.start()
        self.lifecycle.start()
        # after start(): a phone that begins in a foreground session is recorded as foreground
        self.ledger.state(now, self.name, "lifecycle", self._lifecycle_value())
        for t in self.panics:
            self.wire.at(t - now, self._panic)
        self.client.start(now)
        self._pump()

    def finish(self, now: float) -> None:
        """Record the end state (battery level at ``now``) for the checker."""
        self.ledger.state(now, self.name, "battery", round(self.battery.level(now), 3))

    # -- endpoint --------------------------------------------------------------------------------

    def link_delay(self, size: int, up: bool, now: float) -> float | None:
        network = self.network
        state = network.state
        if not state.up or self._blackhole or not self.battery.is_on:
            return None
        promotion = self.radio.transfer(now, size if up else 0, 0 if up else size)
        congestion = network.congestion(now) if self._congestible else 1.0
        return promotion + transfer_delay(state.preset, size, self._link_rng, congestion, up)

    def on_connected(self, channel: str, now: float) -> None:
        self.ledger.connection(now, self.name, channel, "open")
        self.client.connected(channel, now)
        self._pump()

    def on_closed(self, channel: str, code: int, now: float) -> None:
        self._half_open.discard(channel)
        self.ledger.connection(now, self.name, channel, "refused" if code in (4001, 4003) else "closed",
                               str(code))
        self.client.closed(channel, now, code)
        self._pump()

    def on_frame(self, channel: str, message: dict[str, Any], now: float) -> None:
        if channel in self._half_open:
            self._half_open.discard(channel)
            self.ledger.connection(now, self.name, channel, "open", "survived the outage")
        self.client.frame_received(channel, message, now)
        self._pump()

    def on_push(self, now: float) -> None:
        """A high-priority push: the OS may wake the app (quotas and Doze rules in Lifecycle)."""
        woken = self.lifecycle.push(now, True)
        self.ledger.state(now, self.name, "push", "woke" if woken else "ignored")

    def on_http(self, request_id: int, status: int, body: dict[str, Any], now: float) -> None:
        self.client.http_response(request_id, status, body, now)
        self._pump()

    # -- model events ----------------------------------------------------------------------------

    def _network_changed(self, old: NetworkState, new: NetworkState) -> None:
        now = self.env.now
        handover = old.up and new.up and old.preset.is_wifi != new.preset.is_wifi
        if handover:
            # A new address: every socket dies (the checker sees a drop and a restoration).
            self.ledger.state(now, self.name, "network", "down")
        self.ledger.state(now, self.name, "network", new.preset.kind if new.up else "down")
        self._read_battery(now)
        if new.up and new.preset.kind != old.preset.kind:
            self.radio.switch(radio_for(new.preset.kind), now)
        if handover:
            self._half_open.clear()
            self.wire.handover(self)
            self.client.network_changed(False, now)  # connectivity callbacks: lost, then available
            self.client.network_changed(True, now)
            self._pump()
            return
        if new.up != old.up:
            self.wire.network_changed(self, new.up and not self._blackhole)
            if not new.up:
                self._mark_half_open(now)
            self.client.network_changed(new.up, now)
            self._pump()

    def _read_battery(self, now: float) -> None:
        """A battery reading for the report's level-over-time plot, at a change of network or
        lifecycle at most every :data:`BATTERY_READING_S` (no event of its own: a pure read), and
        only while the run lasts: the drain after :meth:`finish` is not the phone's to measure."""
        if now - self._battery_read_at >= BATTERY_READING_S and self.battery.is_on and not self.closing:
            self._battery_read_at = now
            self.ledger.state(now, self.name, "battery", round(self.battery.level(now), 3))

    def _mark_half_open(self, now: float) -> None:
        """The link died under sockets the client still thinks are open (no close frame came).

        Written as ``half_open`` so the checker does not count them as up; the first frame that
        gets through again shows the connection survived (written ``open`` then), a reset shows it
        did not (``closed``).
        """
        for name, channel in self.client.channels.items():
            if channel.status == "open" and name not in self._half_open:
                self._half_open.add(name)
                self.ledger.connection(now, self.name, name, "half_open", "link lost")

    def _lifecycle_changed(self, old: LifecycleStatus, new: LifecycleStatus) -> None:
        now = self.env.now
        self.ledger.state(now, self.name, "lifecycle", self._lifecycle_value())
        self._read_battery(now)
        suspended = new.state in (AppState.SUSPENDED, AppState.KILLED)
        if suspended:
            # iOS suspension or a kill: the OS closes the sockets (the FIN gets out) and the
            # app stops running.
            self.client.lifecycle_changed(False, now)
            self._pump()
            self._asleep = True
            return
        blocked = not new.network_allowed  # Android Doze idle: traffic silently goes nowhere
        if blocked != self._blackhole:
            self._blackhole = blocked
            self.wire.network_changed(self, self.network.state.up and not blocked)
            if blocked:
                self._mark_half_open(now)
        self._asleep = blocked
        if not blocked:
            self.client.lifecycle_changed(True, now)
            self._pump()

    def _screen(self, on: bool) -> None:
        self.battery.set_screen(on, self.env.now)

    def _battery_event(self, kind: str, value: Any) -> None:
        now = self.env.now
        if kind == "saver":
            self.ledger.state(now, self.name, "battery", round(self.battery.level(now), 3))
            self.client.set_location_interval(self.spec.policy.location_interval_s * 4, now)
        elif kind == "empty":
            self.ledger.state(now, self.name, "battery", 0.0)
            self.ledger.state(now, self.name, "power", "off")
            # The phone dies mid-conversation: no close frame leaves it (the backend keeps a
            # half-open socket until its keep-alive notices).
            self._blackhole = True
            self.wire.network_changed(self, False)
            self.client.power_off(now)
            self._pump()
            self._asleep = True

    def _panic(self) -> None:
        now = self.env.now
        if self.closing:
            return
        if self.client.alert_open or self._creating is not None:
            return  # an alert is open or being created: the app already shows it
        if not self.battery.is_on:
            return
        fix = self._fix(now)
        if fix is None:
            return
        origin = self._originate("create", OPERATORS)
        self.correlator.register(correlate.create_key(self.user_id, fix.latitude, fix.longitude), origin)
        self.lifecycle.set_alert_active(True)
        self.battery.set_gps(True, now)
        self._creating = origin
        self.client.panic(now, fix, origin, self.battery.level(now))
        self._pump()

    def _chat(self, alert_id: str, remaining: int) -> None:
        now = self.env.now
        if self.closing or remaining <= 0 or self.client.alert_id != alert_id or not self.client.alert_open:
            return
        if not self.battery.is_on:
            return
        origin = self._originate("chat_from_phone", OPERATORS)
        text = correlate.tagged(self.chatter.line(), origin)
        self.correlator.register(correlate.chat_key(text), origin)
        self.client.chat(now, text, origin)
        self._pump()
        self.wire.at(self.chatter.next_line_in(), lambda: self._chat(alert_id, remaining - 1))

    def _cancel(self, alert_id: str) -> None:
        now = self.env.now
        if self.closing or self.client.alert_id != alert_id or not self.client.alert_open \
                or not self.battery.is_on:
            return
        origin = self._originate("cancel", OPERATORS)
        self.correlator.register(correlate.status_key(alert_id, "canceled"), origin)
        self.client.cancel(now, origin)
        self._pump()

    # -- the client's actions --------------------------------------------------------------------

    def _pump(self) -> None:
        """Carry out everything the client asked for, then re-arm its timer."""
        now = self.env.now
        client = self.client
        for _round in range(100):  # carrying out an action (a fix) can make the client ask for more
            if not client.has_actions:
                break
            self._carry_out(client.take_actions(), now)
        if self._alert_for is not None and (not client.alert_open or client.alert_id != self._alert_for):
            self._alert_ended(now)
        self._arm(now)

    def _carry_out(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action, now)
            elif isinstance(action, Open):
                self.ledger.connection(now, self.name, action.channel, "connecting")
                self.wire.open(self, action.channel, action.path, action.since)
            elif isinstance(action, Close):
                self._half_open.discard(action.channel)
                self.ledger.connection(now, self.name, action.channel, "closed", action.reason)
                self.wire.close(self, action.channel)
            elif isinstance(action, HttpRequest):
                if action.origin_id is not None:
                    self.ledger.attempt(now, action.origin_id, "http", action.path, "http")
                self.wire.http(self, action.request_id, action.method, action.path, action.body)
            elif isinstance(action, WantFix):
                self._location(now)
            elif isinstance(action, Dropped):
                if action.channel is not None:  # the send the client refused to make, and why
                    self.ledger.attempt(now, action.origin_id, "ws", action.channel,
                                        self.client.channels[action.channel].status)
                self.ledger.dropped(now, action.origin_id, action.reason)
                if action.origin_id == self._creating:  # the app gave up creating the alert
                    self._creating = None
                    self.lifecycle.set_alert_active(False)
                    self.battery.set_gps(False, now)
            elif isinstance(action, Acked):
                self.ledger.acked(now, action.origin_id)
                if action.origin_id == self._creating:
                    self._creating = None
                    self._alert_for = self.client.alert_id
                    self._alert_created(now)
            elif isinstance(action, Received):
                self._received(action, now)
            elif isinstance(action, GaveUp):
                self.ledger.connection(now, self.name, action.channel, "gave_up",
                                       f"after {action.attempts} attempts")

    def _send(self, action: Send, now: float) -> None:
        if action.origin_id is not None:
            self.ledger.attempt(now, action.origin_id, "ws", action.channel,
                                self.client.channels[action.channel].status)
        elif action.message.get("type") == "ping" and action.channel == USER:
            self.ledger.heartbeat(now, self.name)
        self.wire.send(self, action.channel, action.message)

    def _arm(self, now: float) -> None:
        deadline = self.client.next_deadline()
        if deadline is None or self._asleep:
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return
        self._timer_at = deadline
        self.wire.at(deadline - now, self._tick)

    def _tick(self) -> None:
        now = self.env.now
        self._timer_at = None
        if self._asleep:
            return  # re-armed when the app runs again
        deadline = self.client.next_deadline()
        if deadline is not None and deadline <= now + 1e-9:
            self.client.handle_timeout(now)
        self._pump()

    def _location(self, now: float) -> None:
        if self.closing:
            return
        fix = self._fix(now)
        if fix is None or self.client.alert_id is None:
            return
        origin = self._originate("location", OPERATORS)
        self.correlator.register(correlate.location_key(self.client.alert_id, fix.latitude,
                                                        fix.longitude), origin)
        self.client.location_fix(now, fix, origin, self.battery.level(now))

    def _fix(self, now: float) -> Fix | None:
        mobility = self.mobility
        lat, lon = mobility.position(now)
        sky = SKY_BY_CAUSE.get(self.network.state.cause, self.spec.sky) if not self.network.state.up \
            else self.spec.sky
        found = self.gps.fix(now, lat, lon, sky, mobility.speed(now), mobility.heading(now))
        if found is None:
            return None
        self.ledger.fix(now, self.name, round(found.latitude, 6), round(found.longitude, 6))
        return Fix(found.latitude, found.longitude, found.accuracy, found.provider, found.speed,
                   found.heading)

    def _alert_created(self, now: float) -> None:
        alert_id = self.client.alert_id
        if alert_id is None:
            return
        self.wire.at(self.chatter.next_line_in(), lambda: self._chat(alert_id, self.spec.user.chat_max))
        cancel_in = self.chatter.cancel_in()
        if cancel_in is not None:
            self.wire.at(cancel_in, lambda: self._cancel(alert_id))

    def _alert_ended(self, now: float) -> None:
        self._alert_for = None
        self.lifecycle.set_alert_active(False)
        self.battery.set_gps(False, now)

    def _received(self, action: Received, now: float) -> None:
        message = action.message
        kind = message.get("type")
        seq = message.get("seq") if isinstance(message.get("seq"), int) else None
        key: correlate.Key | None = None
        if kind in ("alert_status_update", "alert_updated"):  # whichever channel brings it first
            status = message["alert"]["status"]
            if status == "canceled":
                return  # the phone's own cancel, echoed
            key = correlate.status_key(str(message["alert"]["id"]), status)
        elif kind == "operator_message":
            key = correlate.chat_key(message["message"]["message"])
        elif kind == "chat_message" and message.get("is_staff"):
            key = correlate.chat_key(message["message"])
        if key is None:
            return
        origin = self.correlator.lookup(key)
        # Alert-scoped streams restart their seq for every alert: name the stream with its alert.
        stream = action.channel if action.channel == USER else f"{action.channel}.{self.client.alert_id}"
        self.ledger.received(now, origin if origin is not None else f"unknown:{key!r}", self.name,
                             stream, seq)

    # -- helpers ---------------------------------------------------------------------------------

    def _originate(self, kind: str, recipient: str) -> str:
        self._sent += 1
        origin = f"{self.name}:{self._sent}"
        self.ledger.originated(self.env.now, origin, kind, self.name, recipient)
        return origin

    def _lifecycle_value(self) -> str:
        state = self.lifecycle.state
        if state == AppState.SUSPENDED:
            return "suspended"
        if state == AppState.KILLED:
            return "killed"
        if self.lifecycle.dozing:
            return "doze_maintenance" if self.lifecycle.network_allowed else "doze"
        return "foreground" if state == AppState.FOREGROUND else "background"
