"""What a fleet is made of, and how phone ``k`` is drawn from it.

A :class:`FleetConfig` is the validated, typed form of a profile (see :mod:`simulator.profile`).
Phones are split into groups (commuters on transit, walkers, hikers ...) by share; which group,
device model and starting battery phone ``k`` gets is drawn from its own hardware generator, so
phone ``k`` is the same phone in a fleet of 10 and of 10,000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import simpy

from simulator.correlate import Correlator
from simulator.device.battery import DEVICE_MODELS
from simulator.device.lifecycle import LifecycleConfig
from simulator.device.mobility import TRAVEL_MODES, Area, Sky
from simulator.device.network import NetworkConfig
from simulator.device.phone import Phone, PhoneSpec
from simulator.device.user import UserConfig
from simulator.ledger import Ledger
from simulator.operators import Operator, OperatorConfig
from simulator.protocol.policies import POLICIES
from simulator.result import Targets
from simulator.rng import Actor, Concern, generator
from simulator.transport.modelled import Transport, WireConfig


@dataclass(frozen=True)
class Group:
    """A kind of phone user in the profile, with its share of the fleet."""

    name: str
    share: float
    travel: str = "walk"  # a key of TRAVEL_MODES
    mobility: str = "random_waypoint"  # or "gauss_markov"
    sky: Sky = "urban"
    network: NetworkConfig = field(default_factory=NetworkConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    user: UserConfig = field(default_factory=UserConfig)
    battery_pct: tuple[float, float] = (30.0, 100.0)


@dataclass(frozen=True)
class BackendConfig:
    """The modelled backend (simulate mode)."""

    service_mean_s: float = 0.002  # ASSUME: a Channels consumer's DB write on SQLite, ~2 ms
    drop_rate: float = 0.0  # chance a group message to one consumer is lost (a full queue)
    gap_fill: bool = True  # the reference backend recovers such losses from its store


@dataclass(frozen=True)
class FleetConfig:
    """One scenario, fully resolved."""

    name: str
    devices: int
    operators: int
    duration_s: float
    seed: int
    policy: str
    area: Area
    groups: tuple[Group, ...]
    device_models: Mapping[str, float]
    operator: OperatorConfig = field(default_factory=OperatorConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    wire: WireConfig = field(default_factory=WireConfig)
    targets: Targets = field(default_factory=Targets)
    drain_s: float = 120.0
    start_spread_s: float = 10.0
    description: str = ""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; choose one of {sorted(POLICIES)}")
        if not self.groups or sum(g.share for g in self.groups) <= 0:
            raise ValueError("a fleet needs at least one group with a positive share")
        unknown = set(self.device_models) - set(DEVICE_MODELS)
        if unknown:
            raise ValueError(f"unknown device models {sorted(unknown)}; known: {sorted(DEVICE_MODELS)}")
        for group in self.groups:
            if group.travel not in TRAVEL_MODES:
                raise ValueError(f"group {group.name}: unknown travel mode {group.travel!r}")


def _pick(weights: Mapping[str, float], draw: float) -> str:
    total = sum(weights.values())
    acc = 0.0
    for name, weight in weights.items():
        acc += weight / total
        if draw < acc:
            return name
    return next(reversed(list(weights)))


def phone_spec(config: FleetConfig, index: int, user_id: int) -> tuple[PhoneSpec, float]:
    """Phone ``index`` of the fleet, and the time it starts (within ``start_spread_s``)."""
    rng = generator(config.seed, Actor.DEVICE, index, Concern.HARDWARE)
    draws = rng.random(4)
    groups = {g.name: g.share for g in config.groups}
    group = next(g for g in config.groups if g.name == _pick(groups, float(draws[0])))
    device = DEVICE_MODELS[_pick(config.device_models, float(draws[1]))]
    low, high = group.battery_pct
    spec = PhoneSpec(
        index=index, user_id=user_id, device=device,
        battery_pct=low + (high - low) * float(draws[2]),
        network=group.network, lifecycle=group.lifecycle, user=group.user, area=config.area,
        travel=TRAVEL_MODES[group.travel], mobility=group.mobility, sky=group.sky,
        policy=POLICIES[config.policy],
    )
    return spec, config.start_spread_s * float(draws[3])


def populate(config: FleetConfig, env: simpy.Environment, wire: Transport, ledger: Ledger,
             correlator: Correlator, phone_ids: Sequence[int], operator_ids: Sequence[int]
             ) -> tuple[list[Phone], list[Operator]]:
    """The fleet's phones and operators with their backend user ids, each scheduled to start."""
    directory: dict[int, str] = {}
    phones: list[Phone] = []
    for index, user_id in enumerate(phone_ids):
        spec, start_at = phone_spec(config, index, user_id)
        phone = Phone(spec, config.seed, env, wire, ledger, correlator, config.duration_s)
        directory[user_id] = phone.name
        phones.append(phone)
        wire.at(start_at, phone.start)
    claims: dict[str, str] = {}
    operators: list[Operator] = []
    for index, user_id in enumerate(operator_ids):
        operator = Operator(index, user_id, env, wire, ledger, correlator,
                            generator(config.seed, Actor.OPERATOR, index, Concern.OPERATOR),
                            config.operator, directory, claims,
                            use_ids=config.policy != "beacon-1.0")
        operators.append(operator)
        wire.at(0.0, operator.start)
    return phones, operators


def stop_originating(phones: Sequence[Phone], operators: Sequence[Operator], now: float,
                     duration_s: float) -> None:
    """The run is over: nobody originates anything new; phones note their end state."""
    for phone in phones:
        if not phone.closing:
            phone.closing = True
            phone.finish(min(now, duration_s))
    for operator in operators:
        operator.closing = True
