"""Profiles: every shipped one loads; every mistake names the file, the line, the key and the reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator.fleet import FleetConfig
from simulator.profile import (
    DEFAULT_POLICY,
    PROFILES_DIR,
    ProfileError,
    available,
    load,
    loads,
    parse_duration,
    resolve,
    with_overrides,
)
from simulator.result import Targets

SHIPPED = ("ci-smoke", "city-commute", "first-look", "rural-hiker", "stadium")

MINIMAL = """\
devices = 3
operators = 1
duration = "10m"
seed = 7

[area]
latitude = 51.5
longitude = -0.12
radius_m = 500

[device_models]
"iPhone 15" = 1

[[groups]]
name = "walkers"
share = 1.0
"""


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the shipped profiles ----------------------------------------------------------------------------

def test_the_four_scenarios_are_shipped() -> None:
    assert set(SHIPPED) <= set(available())


@pytest.mark.parametrize("name", available())
def test_every_shipped_profile_loads(name: str) -> None:
    config = load(name)
    assert isinstance(config, FleetConfig)
    assert config.name == name
    assert config.devices >= 1 and config.duration_s > 0 and config.groups
    assert config.policy == DEFAULT_POLICY == "resilient"
    assert config.description


@pytest.mark.parametrize("name", available())
def test_every_shipped_profile_states_its_targets(name: str) -> None:
    config = load(name)
    text = (PROFILES_DIR / f"{name}.toml").read_text()
    assert "[targets]" in text
    defaults = Targets()
    # CLAIMS.md defaults unless the profile says otherwise; each sets a battery target.
    assert config.targets.connect_p99_s == defaults.connect_p99_s
    assert config.targets.loss_reconnect_max == defaults.loss_reconnect_max
    assert config.targets.battery_pct_per_hour is not None


@pytest.mark.parametrize("name", available())
def test_every_number_in_a_shipped_profile_has_a_comment(name: str) -> None:
    """MODELS.md: every number carries its source or ASSUME (on its line, the line above, or its table)."""
    lines = (PROFILES_DIR / f"{name}.toml").read_text().splitlines()
    header_comment = False
    previous = ""
    for number, line in enumerate(lines, start=1):
        code = line.split("#", 1)[0]
        if re.match(r"\s*\[", code):
            header_comment = "#" in line
        elif "=" in code and re.search(r"=\s*[-+\[{\"]?\s*\.?\d", code):
            assert "#" in line or previous.lstrip().startswith("#") or "#" in previous or header_comment, \
                f"{name}.toml:{number}: a number without a source or ASSUME comment: {line.strip()}"
        if line.strip():
            previous = line


def test_city_commute_mixes_devices_travel_and_tunnels() -> None:
    config = load("city-commute")
    assert len(config.device_models) >= 3
    travel = {g.travel for g in config.groups}
    assert {"walk", "transit"} <= travel
    transit = next(g for g in config.groups if g.travel == "transit")
    assert transit.network.outage_causes.get("tunnel", 0) > 0.5


def test_stadium_is_a_dense_crowd_with_congestion_and_a_mass_outage() -> None:
    config = load("stadium")
    assert config.area.radius_m <= 500
    for group in config.groups:
        assert group.network.congestion and group.network.mass_outages


def test_rural_hiker_is_weak_slow_and_low_on_battery() -> None:
    config = load("rural-hiker")
    for group in config.groups:
        assert group.mobility == "gauss_markov"
        assert "wifi" not in group.network.presets and group.network.handover_mean_s is None
        assert group.battery_pct[1] <= 60
        assert group.network.outage_max_s >= 600


# -- finding a profile ----------------------------------------------------------------------------

def test_a_profile_is_a_path_or_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve("ci-smoke") == PROFILES_DIR / "ci-smoke.toml"
    assert resolve("ci-smoke.toml") == PROFILES_DIR / "ci-smoke.toml"
    own = write(tmp_path, MINIMAL, "mine.toml")
    assert resolve(own) == own
    assert load(own).name == "mine"
    (tmp_path / "profiles").mkdir()
    write(tmp_path / "profiles", MINIMAL, "local.toml")
    monkeypatch.chdir(tmp_path)
    assert load("local").name == "local"


def test_an_unknown_profile_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match=r"no-such: .*ci-smoke, city-commute"):
        load("no-such")


def test_a_directory_is_not_a_profile(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not a file"):
        load(tmp_path)


# -- errors: file, line, key path, reason ------------------------------------------------------------

CASES = [
    # (what, replace this, with this, key path, line, reason)
    ("typo", 'radius_m = 500', 'radus_m = 500', "area.radus_m", 9, "unknown key; did you mean 'radius_m'?"),
    ("unknown top key", 'seed = 7', 'seed = 7\nphones = 3', "phones", 5, "unknown key"),
    ("wrong type", 'devices = 3', 'devices = "3"', "devices", 1, "expected a whole number, got a string '3'"),
    ("float for int", 'devices = 3', 'devices = 3.5', "devices", 1, "expected a whole number"),
    ("bool for number", 'radius_m = 500', 'radius_m = true', "area.radius_m", 9, "expected a number"),
    ("out of range", 'latitude = 51.5', 'latitude = 91', "area.latitude", 7, "must be between -85 and 85"),
    ("negative", 'seed = 7', 'seed = -1', "seed", 4, "must not be negative"),
    ("zero devices", 'devices = 3', 'devices = 0', "devices", 1, "must be more than 0"),
    ("bad duration", 'duration = "10m"', 'duration = "ten minutes"', "duration", 3, "expected a duration"),
    ("zero duration", 'duration = "10m"', 'duration = 0', "duration", 3, "must be more than 0"),
    ("unknown policy", 'seed = 7', 'seed = 7\npolicy = "yolo"', "policy", 5,
     "unknown value 'yolo' (choose from beacon-1.0, resilient)"),
    ("unknown device model", '"iPhone 15" = 1', '"Pixel 8" = 1', 'device_models."Pixel 8"', 12,
     "unknown device model 'Pixel 8' (known: Galaxy S24, Galaxy S24 Ultra, iPhone 15"),
    ("unknown travel mode", 'share = 1.0', 'share = 1.0\ntravel = "run"', "groups[0].travel", 17,
     "unknown value 'run' (choose from cycle, drive, transit, walk)"),
    ("unknown mobility", 'share = 1.0', 'share = 1.0\nmobility = "levy"', "groups[0].mobility", 17,
     "(choose from gauss_markov, random_waypoint)"),
    ("unknown sky", 'share = 1.0', 'share = 1.0\nsky = "space"', "groups[0].sky", 17,
     "(choose from indoor, open"),
    ("unknown preset", 'share = 1.0', 'share = 1.0\n[groups.network]\npresets = { lte = 1, "5g" = 1 }',
     'groups[0].network.presets.5g', 18, "unknown preset '5g' (known: 3g, edge, fast-4g"),
    ("missing key", 'share = 1.0', '', "groups[0]", 14, "missing required key 'share'"),
    ("low above high", 'share = 1.0', 'share = 1.0\nbattery_pct = [80, 20]', "groups[0].battery_pct", 17,
     "low <= high"),
    ("probability", 'share = 1.0', 'share = 1.0\n[groups.user]\ncancel_probability = 1.5',
     "groups[0].user.cancel_probability", 18, "must be between 0 and 1"),
    ("array of tables", 'share = 1.0',
     'share = 1.0\n[[groups.network.mass_outages]]\nstart = "5m"\nduration = "1m"\nfraction = 2',
     "groups[0].network.mass_outages[0].fraction", 20, "must be between 0 and 1"),
    ("second group", 'share = 1.0', 'share = 1.0\n\n[[groups]]\nname = "b"\nshare = "lots"',
     "groups[1].share", 20, "expected a number"),
    ("duplicate group", 'share = 1.0', 'share = 1.0\n\n[[groups]]\nname = "walkers"\nshare = 1',
     "groups[1].name", 19, "another group is already named 'walkers'"),
    ("min above max", 'share = 1.0', 'share = 1.0\n[groups.network]\noutage_min = "5m"\noutage_max = "1m"',
     "groups[0].network.outage_max", 19, "must not be less than outage_min"),
    ("shared table", '[[groups]]', '[lifecycle]\nmean_foregruond = "1m"\n\n[[groups]]',
     "lifecycle.mean_foregruond", 15, "did you mean 'mean_foreground'?"),
    ("lognormal", 'seed = 7', 'seed = 7\n[operator]\nack_delay = { median = "20s" }', "operator.ack_delay", 6,
     "expected {median = <duration>, sigma = <number>}"),
    ("unknown target", 'seed = 7', 'seed = 7\n[targets]\nconnect_p99_s = 3', "targets.connect_p99_s", 6,
     "did you mean 'connect_p99'?"),
    ("not a table", 'seed = 7', 'seed = 7\narea2 = 1\nnetwork = 5', "network", 6, "expected a table"),
]


@pytest.mark.parametrize(("what", "old", "new", "key", "line", "reason"), CASES, ids=[c[0] for c in CASES])
def test_each_error_names_file_line_key_and_reason(tmp_path: Path, what: str, old: str, new: str, key: str,
                                                  line: int, reason: str) -> None:
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1), "broken.toml")
    with pytest.raises(ProfileError) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith((f"{path}:{line}: {key}: ", f"broken.toml:{line}: {key}: ")), message
    assert reason in message, message


def test_invalid_toml_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("seed = 7", "seed = "), "bad.toml")
    with pytest.raises(ProfileError, match=r"bad\.toml:4: invalid TOML: "):
        load(path)


def test_loads_names_its_source() -> None:
    with pytest.raises(ProfileError, match=r"^<text>:1: devices: "):
        loads(MINIMAL.replace("devices = 3", "devices = -3"), source="<text>")


# -- what a valid profile means ---------------------------------------------------------------------

def test_durations_and_defaults(tmp_path: Path) -> None:
    text = MINIMAL + '[groups.network]\nhandover_mean = false\noutage_max = "1h30m"\n'
    config = load(write(tmp_path, text, "d.toml"))
    assert config.duration_s == 600.0
    assert config.policy == "resilient"
    assert config.groups[0].network.handover_mean_s is None
    assert config.groups[0].network.outage_max_s == 5400.0
    assert config.targets == Targets()


def test_shared_tables_are_defaults_a_group_can_override(tmp_path: Path) -> None:
    shared = '[network]\noutage_rate_per_h = 4\nhandover_mean = "5m"\n\n[[groups]]'
    text = MINIMAL.replace("[[groups]]", shared)
    text += '\n[[groups]]\nname = "riders"\nshare = 1\n[groups.network]\noutage_rate_per_h = 0.5\n'
    walkers, riders = load(write(tmp_path, text)).groups
    assert (walkers.network.outage_rate_per_h, walkers.network.handover_mean_s) == (4.0, 300.0)
    assert (riders.network.outage_rate_per_h, riders.network.handover_mean_s) == (0.5, 300.0)


def test_operator_delays_and_targets(tmp_path: Path) -> None:
    text = MINIMAL + ('[operator]\nack_delay = { median = "30s", sigma = 0.25 }\n'
                      '[targets]\nreconnect_p99 = "10s"\nbattery_pct_per_hour = 2.5\n')
    config = load(write(tmp_path, text))
    assert config.operator.ack_delay == (30.0, 0.25)
    assert config.targets == Targets(reconnect_p99_s=10.0, battery_pct_per_hour=2.5)


# -- overrides ---------------------------------------------------------------------------------------

def test_overrides_replace_the_profile_values() -> None:
    base = load("ci-smoke")
    config = load("ci-smoke", devices=5, operators=0, duration_s=90.0, seed=42, policy="beacon-1.0")
    assert (config.devices, config.operators, config.duration_s, config.seed, config.policy) == \
        (5, 0, 90.0, 42, "beacon-1.0")
    assert config.groups == base.groups and config.targets == base.targets
    assert load("ci-smoke", seed=None) == base


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"devices": 0}, "--devices: expected a whole number >= 1"),
    ({"operators": -1}, "--operators: expected a whole number >= 0"),
    ({"seed": -5}, "--seed: expected a whole number >= 0"),
    ({"duration_s": 0.0}, "--duration: must be more than 0 s"),
    ({"policy": "yolo"}, "--policy: unknown policy 'yolo' (choose from beacon-1.0, resilient)"),
])
def test_bad_overrides_are_refused(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ProfileError) as caught:
        with_overrides(load("ci-smoke"), **kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith(reason), caught.value


# -- durations ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90.0), (1.5, 1.5), ("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0),
    ("1h30m", 5400.0), ("1h 30m", 5400.0), ("250ms", 0.25), ("1.5h", 5400.0), ("1d", 86400.0),
    (" 2H ", 7200.0), ("0s", 0.0),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "1h30", "5min", "-5m", "-5", "inf", "nan", True, None, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
