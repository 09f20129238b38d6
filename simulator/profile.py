"""Scenario profiles: a TOML file in, a validated :class:`~simulator.fleet.FleetConfig` out.

A profile is the TOML form of the typed config, so the keys are the field names of the config
dataclasses (``FleetConfig``, ``Group``, ``NetworkConfig``, ``LifecycleConfig``, ``UserConfig``,
``OperatorConfig``, ``BackendConfig``, ``WireConfig``, ``Targets``) with one rule added: a field in
seconds drops its ``_s`` suffix and takes a duration, a number of seconds or a string such as
``"90s"``, ``"15m"``, ``"2h"``, ``"1h30m"`` or ``"250ms"`` (``outage_max = "5m"`` sets
``outage_max_s``). Layout::

    name, description, devices, operators, duration, seed, policy, drain, start_spread
    [area]            latitude, longitude, radius_m
    [device_models]   "iPhone 15" = 0.5, ...            (weights)
    [network] [lifecycle] [user]                        shared defaults for every group
    [[groups]]        name, share, travel, mobility, sky, battery_pct = [low, high]
      [groups.network] [groups.lifecycle] [groups.user] (a group's keys override the shared ones)
      [[groups.network.mass_outages]] start, duration, fraction
      [[groups.network.congestion]]   start, end, factor
    [operator]        max_alerts, link_latency, ack_delay = {median = "20s", sigma = 0.5}, ...
    [backend] [wire] [targets]

Validation is strict, because a typo that silently keeps a default makes a scenario lie: unknown
keys, wrong types, values out of range and unknown names (policies, presets, travel modes, device
models) are errors. A :class:`ProfileError` is one line: the file, the line where the key is (found
by reading the text, so it is a best effort), the key path and the reason.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import simulator
from simulator.device.battery import DEVICE_MODELS
from simulator.device.lifecycle import LifecycleConfig
from simulator.device.mobility import TRAVEL_MODES
from simulator.device.network import PRESETS, NetworkConfig
from simulator.device.user import UserConfig
from simulator.fleet import FleetConfig
from simulator.protocol.policies import POLICIES

PROFILES_DIR = Path(simulator.__file__).resolve().parent.parent / "profiles"
DEFAULT_POLICY = "resilient"
MOBILITY_MODELS = ("random_waypoint", "gauss_markov")

# Names a string (or a table's keys) must be one of.
_CHOICES: dict[str, Collection[str]] = {"policy": POLICIES, "travel": TRAVEL_MODES,
                                        "mobility": MOBILITY_MODELS}
_KEY_CHOICES: dict[str, Collection[str]] = {"presets": PRESETS, "device_models": DEVICE_MODELS}
# (median seconds, sigma) pairs of OperatorConfig, written as {median = "20s", sigma = 0.5}.
_LOGNORMAL = {"ack_delay", "reply_delay", "resolve_after"}
# Tables at the top that are shared defaults for every group's table of the same name.
_SHARED = ("network", "lifecycle", "user")

# Ranges. Numbers are >= 0 and durations > 0 unless listed here.
_INTERVALS: dict[str, tuple[float, float]] = {
    "latitude": (-85.0, 85.0), "longitude": (-180.0, 180.0), "battery_pct": (0.0, 100.0),
    **{name: (0.0, 1.0) for name in (
        "fraction", "screen_off_probability", "cancel_probability", "drop_rate", "heartbeat_tolerance",
        "heartbeat_within_share", "delivery_min", "loss_reconnect_max", "uptime_min",
        "reconnect_success_min")},
}
_BELOW_ONE = {"kill_probability_per_hour"}  # [0, 1)
_POSITIVE = {"devices", "radius_m", "outage_alpha", "factor", "latency_p99_ms", "battery_pct_per_hour",
             "max_alerts", "median", "light_idle_factor", "idle_factor", "idle_pending_factor"}
_ZERO_DURATION_OK = {"drain_s", "start_spread_s", "start_s", "ios_suspend_s", "ios_background_task_s",
                     "push_wake_s", "push_allowlist_s", "link_latency_s", "service_mean_s"}

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HELP = 'a duration: seconds, or a string like "90s", "15m", "2h", "1h30m"'


class ProfileError(Exception):
    """A profile that cannot be used; the message is one line naming file, line, key and reason."""


# -- durations --------------------------------------------------------------------------------------

def parse_duration(value: object) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"15m"``, ``"2h"``, ``"1h30m"``, ``"600"``.

    Raises:
        ValueError: If ``value`` is not a finite, non-negative duration (the message says why).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected {DURATION_HELP}, got {_show(value)}")
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = list(_DURATION_PART.finditer(text))
            if not parts or "".join(p.group(0) for p in parts) != re.sub(r"(?<=[a-z])\s+", "", text):
                raise ValueError(f"expected {DURATION_HELP}, got {value!r}") from None
            seconds = sum(float(p.group(1)) * _UNIT_S[p.group(2)] for p in parts)
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and not negative, got {_show(value)}")
    return seconds


# -- finding and loading ----------------------------------------------------------------------------

def available() -> list[str]:
    """The names of the profiles shipped in ``profiles/``."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def resolve(profile: str | Path) -> Path:
    """The file a PROFILE argument names: a path, else ``profiles/<name>.toml``.

    Looked up as given, then in ``./profiles/`` and in the repository's ``profiles/``.

    Raises:
        ProfileError: If no such file exists (the message lists the shipped profiles).
    """
    given = Path(profile)
    if given.is_file():
        return given
    stem = given.name.removesuffix(".toml")
    if given.parent == Path(".") and stem:
        for folder in (Path.cwd() / "profiles", PROFILES_DIR):
            candidate = folder / f"{stem}.toml"
            if candidate.is_file():
                return candidate
    if given.exists():
        raise ProfileError(f"{profile}: not a file")
    raise ProfileError(f"{profile}: no such profile file, nor a profile of that name "
                       f"(shipped: {', '.join(available()) or 'none'})")


def load(profile: str | Path, *, devices: int | None = None, operators: int | None = None,
         duration_s: float | None = None, seed: int | None = None,
         policy: str | None = None) -> FleetConfig:
    """Read, validate and resolve a profile, then apply command-line overrides.

    Args:
        profile: A path to a TOML file, or the name of one under ``profiles/``.
        devices, operators, duration_s, seed, policy: Overrides; ``None`` keeps the profile's.

    Raises:
        ProfileError: If the profile cannot be found, read or validated, or an override is invalid.
    """
    path = resolve(profile)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ProfileError(f"{_display(path)}: cannot read: {reason}") from None
    config = loads(text, source=_display(path), name=path.stem)
    return with_overrides(config, devices=devices, operators=operators, duration_s=duration_s,
                          seed=seed, policy=policy)


def loads(text: str, source: str = "<profile>", name: str = "profile") -> FleetConfig:
    """Validate the text of a profile; ``source`` names it in errors, ``name`` is its default name.

    Raises:
        ProfileError: On invalid TOML or an invalid profile.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = re.search(r"\(at line (\d+), column \d+\)$", message)
        where = f"{source}:{found.group(1)}" if found else source
        raise ProfileError(f"{where}: invalid TOML: {message[:found.start()].strip() if found else message}"
                           ) from None
    reader = _Reader(source, text)
    data.setdefault("name", name)
    data.setdefault("policy", DEFAULT_POLICY)
    shared = {key: data.pop(key) for key in _SHARED if key in data}
    for key, table in shared.items():  # validated alone first, so errors point at the shared table
        reader.build(_type_of(key), reader.table(table, key), key)
    groups = data.get("groups")
    if isinstance(groups, list):
        for group in groups:
            for key, table in shared.items():
                if isinstance(group, dict) and isinstance(table, dict):
                    own = group.get(key, {})
                    group[key] = {**table, **own} if isinstance(own, dict) else own
    config = reader.build(FleetConfig, data, "")
    assert isinstance(config, FleetConfig)
    return config


def with_overrides(config: FleetConfig, *, devices: int | None = None, operators: int | None = None,
                   duration_s: float | None = None, seed: int | None = None,
                   policy: str | None = None) -> FleetConfig:
    """``config`` with the given fields replaced (``None`` keeps a field).

    Raises:
        ProfileError: If an override is out of range or names an unknown policy.
    """
    changes: dict[str, Any] = {}
    for key, value, low in (("devices", devices, 1), ("operators", operators, 0), ("seed", seed, 0)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ProfileError(f"--{key}: expected a whole number >= {low}, got {_show(value)}")
            changes[key] = value
    if duration_s is not None:
        if not math.isfinite(duration_s) or duration_s <= 0:
            raise ProfileError(f"--duration: must be more than 0 s, got {duration_s!r}")
        changes["duration_s"] = float(duration_s)
    if policy is not None:
        if policy not in POLICIES:
            raise ProfileError(f"--policy: unknown policy {policy!r} (choose from {_listing(POLICIES)})")
        changes["policy"] = policy
    return dataclasses.replace(config, **changes) if changes else config


# -- the generic reader -------------------------------------------------------------------------------

class _Reader:
    """Builds config dataclasses from TOML tables, reporting errors at a key path."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = _line_index(text)

    def fail(self, path: str, reason: str) -> typing.NoReturn:
        line = None
        probe = path
        while probe:
            line = self.lines.get(probe)
            if line is not None:
                break
            probe = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe) if re.search(r"[.\[]", probe) else ""
        where = f"{self.source}:{line}" if line is not None else self.source
        raise ProfileError(f"{where}: {path}: {reason}" if path else f"{where}: {reason}")

    def table(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"expected a table, got {_show(value)}")
        return value

    def build(self, cls: type, value: object, path: str) -> Any:
        """An instance of the dataclass ``cls`` from the table ``value`` at ``path``."""
        table = self.table(value, path)
        hints = typing.get_type_hints(cls)
        fields = {_key(f.name, hints[f.name]): f for f in dataclasses.fields(cls) if f.init}
        kwargs: dict[str, Any] = {}
        for key, item in table.items():
            where = _join(path, key)
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {_listing(fields)})"
                self.fail(where, f"unknown key{hint}")
            field = fields[key]
            kwargs[field.name] = self.value(hints[field.name], item, where, field.name)
        for key, field in fields.items():
            missing = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if missing and field.name not in kwargs:
                self.fail(path, f"missing required key {key!r}")
        self.check_whole(cls, kwargs, path)
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as error:
            self.fail(path, str(error))

    def value(self, hint: Any, value: object, path: str, name: str) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (types.UnionType, typing.Union) and type(None) in args:
            if value is False:  # TOML has no null: `false` switches an optional setting off
                return None
            inner = [a for a in args if a is not type(None)]
            return self.value(inner[0], value, path, name)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.build(hint, value, path)
        if origin is typing.Literal:
            return self.choice(value, path, [str(a) for a in args])
        if hint is bool:
            if not isinstance(value, bool):
                self.fail(path, f"expected true or false, got {_show(value)}")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, f"expected a whole number, got {_show(value)}")
            return self.in_range(value, path, name)
        if hint is float:
            return self.in_range(self.number(value, path, name), path, name)
        if hint is str:
            if name in _CHOICES:
                return self.choice(value, path, _CHOICES[name])
            if not isinstance(value, str):
                self.fail(path, f"expected a string, got {_show(value)}")
            return value
        if origin is tuple and name in _LOGNORMAL:
            table = self.table(value, path)
            extra = sorted(set(table) - {"median", "sigma"})
            if extra or {"median", "sigma"} - set(table):
                self.fail(path, "expected {median = <duration>, sigma = <number>}"
                          + (f"; unknown key {extra[0]!r}" if extra else ""))
            return (self.in_range(self.number(table["median"], _join(path, "median"), "median_s"),
                                  _join(path, "median"), "median"),
                    self.in_range(self.number(table["sigma"], _join(path, "sigma"), "sigma"),
                                  _join(path, "sigma"), "sigma"))
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            if not isinstance(value, list):
                self.fail(path, f"expected an array of tables, got {_show(value)}")
            return tuple(self.value(args[0], item, f"{path}[{i}]", name) for i, item in enumerate(value))
        if origin is tuple:
            if not isinstance(value, list) or len(value) != len(args):
                self.fail(path, f"expected an array of {len(args)} numbers, got {_show(value)}")
            items = tuple(self.value(a, v, f"{path}[{i}]", name) for i, (a, v) in enumerate(zip(args, value,
                                                                                               strict=True)))
            if list(items) != sorted(items):
                self.fail(path, f"expected [low, high] with low <= high, got {_show(value)}")
            return items
        if origin in (Mapping, dict) and args[:1] == (str,):
            table = self.table(value, path)
            known = _KEY_CHOICES.get(name)
            for key in table:
                if known is not None and key not in known:
                    self.fail(_join(path, key), f"unknown {name.rstrip('s').replace('_', ' ')} {key!r} "
                              f"(known: {_listing(known)})")
            weights = {k: self.in_range(self.number(v, _join(path, k), "weight"), _join(path, k), "weight")
                       for k, v in table.items()}
            if sum(weights.values()) <= 0:
                self.fail(path, "the weights must have a positive sum")
            return weights
        self.fail(path, "this setting cannot be set from a profile")

    def number(self, value: object, path: str, name: str) -> float:
        if name.endswith("_s"):
            try:
                return parse_duration(value)
            except ValueError as error:
                self.fail(path, str(error))
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"expected a number, got {_show(value)}")
        if not math.isfinite(value):
            self.fail(path, f"expected a finite number, got {value!r}")
        return float(value)

    def in_range(self, value: float, path: str, name: str) -> Any:
        if name in _INTERVALS:
            low, high = _INTERVALS[name]
            if not low <= value <= high:
                self.fail(path, f"must be between {low:g} and {high:g}, got {value:g}")
        elif name in _BELOW_ONE and not 0 <= value < 1:
            self.fail(path, f"must be at least 0 and below 1, got {value:g}")
        elif name in _POSITIVE or (name.endswith("_s") and name not in _ZERO_DURATION_OK):
            if value <= 0:
                self.fail(path, f"must be more than 0, got {value:g}")
        elif value < 0:
            self.fail(path, f"must not be negative, got {value:g}")
        return value

    def choice(self, value: object, path: str, known: Collection[str]) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_show(value)}")
        if value not in known:
            self.fail(path, f"unknown value {value!r} (choose from {_listing(known)})")
        return value

    def check_whole(self, cls: type, kwargs: dict[str, Any], path: str) -> None:
        """Rules across fields that the dataclasses would state less clearly."""
        if cls is FleetConfig:
            names = [g.name for g in kwargs["groups"]]
            for index, group_name in enumerate(names):
                if names.index(group_name) != index:
                    self.fail(f"groups[{index}].name", f"another group is already named {group_name!r}")
            if not kwargs["groups"]:
                self.fail("groups", "a fleet needs at least one [[groups]] table")
            if sum(g.share for g in kwargs["groups"]) <= 0:
                self.fail("groups", "the groups' shares must have a positive sum")
        for low, high in (("outage_min_s", "outage_max_s"), ("start_s", "end_s")):
            if low in kwargs and high in kwargs and kwargs[low] > kwargs[high]:
                self.fail(_join(path, high[:-2]), f"must not be less than {low[:-2]} "
                          f"({kwargs[high]:g} s < {kwargs[low]:g} s)")


def _type_of(shared: str) -> type:
    return {"network": NetworkConfig, "lifecycle": LifecycleConfig, "user": UserConfig}[shared]


def _key(field_name: str, hint: Any) -> str:
    """The TOML key of a field: durations (``*_s`` numbers) drop the suffix."""
    numeric = hint is float or (typing.get_origin(hint) is types.UnionType and float in typing.get_args(hint))
    return field_name[:-2] if field_name.endswith("_s") and numeric else field_name


def _join(path: str, key: str) -> str:
    """``path.key``, quoting a key that is not a bare TOML key (``device_models."iPhone 15"``)."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", key):
        key = f'"{key}"'
    return f"{path}.{key}" if path else key


def _show(value: object) -> str:
    kind = {bool: "a boolean", str: "a string", int: "a whole number", float: "a number",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return f"{kind} {text}" if len(text) <= 40 else kind


def _listing(names: Collection[str]) -> str:
    return ", ".join(sorted(names))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- where keys are -----------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = r"(?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-]+)"
_ASSIGN = re.compile(rf"^\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=")
_PART = re.compile(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_\-]+)")


def _parts(dotted: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None) for m in _PART.finditer(dotted)]


def _line_index(text: str) -> dict[str, int]:
    """Key path (``groups[1].network.outage_max``) -> the 1-based line that sets or opens it.

    A best effort over the text: table headers, arrays of tables and ``key = value`` lines; keys
    inside inline tables and multi-line arrays are found through their parent's line.
    """
    index: dict[str, int] = {}
    arrays: dict[str, int] = {}
    prefix = ""
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_string = not in_string
            if not in_string:
                continue
        if in_string:
            continue
        header = _HEADER.match(line)
        if header:
            parts = _parts(header.group(2))
            path = ""
            for depth, part in enumerate(parts):
                path = _join(path, part)
                if depth == len(parts) - 1 and header.group(1) == "[[":
                    arrays[path] = arrays.get(path, -1) + 1
                if path in arrays:
                    path = f"{path}[{arrays[path]}]"
            prefix = path
            index.setdefault(prefix, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            path = prefix
            for part in _parts(assign.group(1)):
                path = _join(path, part)
            index.setdefault(path, number)
    return index
