"""Mobility models and the location provider."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geopy.distance import geodesic  # type: ignore[import-untyped]

from simulator.device.mobility import (
    TRAVEL_MODES,
    Area,
    Fix,
    GaussMarkov,
    Gps,
    RandomWaypoint,
    metres_per_degree,
)
from simulator.rng import Actor, Concern, generator

HOUR = 3600.0
AREA = Area(52.52, 13.405, 1000.0)  # central Berlin


def rng(seed: int, index: int = 0, concern: Concern = Concern.MOBILITY) -> np.random.Generator:
    return generator(seed, Actor.DEVICE, index, concern)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(geodesic(a, b).meters)


def test_travel_modes_carry_the_sourced_ranges() -> None:
    walk = TRAVEL_MODES["walk"]
    assert (walk.min_speed_mps, walk.max_speed_mps, walk.pause_min_s, walk.pause_max_s) == (0.5, 1.5, 0, 120)
    drive = TRAVEL_MODES["drive"]
    assert (drive.min_speed_mps, drive.max_speed_mps) == (2.7, 13.9)
    transit = TRAVEL_MODES["transit"]
    assert (transit.min_speed_mps, transit.max_speed_mps) == (7.0, 10.0)
    assert TRAVEL_MODES["cycle"].min_speed_mps < 4.5 < TRAVEL_MODES["cycle"].max_speed_mps


def test_metres_per_degree_agrees_with_geodesic() -> None:
    per_lat, per_lon = metres_per_degree(AREA.latitude)
    north = metres((AREA.latitude, AREA.longitude), (AREA.latitude + 0.01, AREA.longitude))
    east = metres((AREA.latitude, AREA.longitude), (AREA.latitude, AREA.longitude + 0.01))
    assert per_lat * 0.01 == pytest.approx(north, rel=1e-4)
    assert per_lon * 0.01 == pytest.approx(east, rel=1e-4)


# ---- random waypoint -----------------------------------------------------------------------------


def test_random_waypoint_needs_a_positive_minimum_speed() -> None:
    with pytest.raises(ValueError, match="Yoon"):
        RandomWaypoint(AREA, TRAVEL_MODES["walk"], rng(1), min_speed_mps=0.0)


def test_random_waypoint_speed_does_not_decay_and_stays_in_the_area() -> None:
    walk = TRAVEL_MODES["walk"]
    phones = [RandomWaypoint(AREA, walk, rng(2, k)) for k in range(30)]
    hourly: list[float] = []
    centre = (AREA.latitude, AREA.longitude)
    for hour in range(10):
        moving: list[float] = []
        for phone in phones:
            for t in np.arange(hour * HOUR, (hour + 1) * HOUR, 10.0):
                speed = phone.speed(float(t))
                if speed > 0:
                    moving.append(speed)
                    assert walk.min_speed_mps <= speed <= walk.max_speed_mps
                if t % 600 == 0:
                    assert metres(centre, phone.position(float(t))) <= AREA.radius_m * 1.01
        hourly.append(float(np.mean(moving)))
    # Yoon et al.: with speeds uniform in [a, b] the time-average settles at (b - a) / ln(b / a)
    # (0.91 m/s for walking) instead of decaying; ~30 legs per phone-hour window, so +-10% is ~4 SE.
    steady = (1.5 - 0.5) / math.log(1.5 / 0.5)
    assert min(hourly) >= walk.min_speed_mps
    assert np.mean(hourly[5:]) == pytest.approx(steady, rel=0.1)
    assert hourly[-1] >= 0.85 * steady


def test_random_waypoint_moves_at_its_stated_speed_and_heading() -> None:
    phone = RandomWaypoint(AREA, TRAVEL_MODES["drive"], rng(3))
    checked = 0
    for t in np.arange(0.0, 2 * HOUR, 5.0):
        speed, heading, a = phone.speed(float(t)), phone.heading(float(t)), phone.position(float(t))
        b = phone.position(float(t) + 1.0)
        if speed > 0 and phone.speed(float(t) + 1.0) == speed:
            assert metres(a, b) == pytest.approx(speed, rel=0.01)
            assert 0.0 <= heading < 360.0
            per_lat, per_lon = metres_per_degree(a[0])
            bearing = math.degrees(math.atan2((b[1] - a[1]) * per_lon, (b[0] - a[0]) * per_lat)) % 360
            assert abs((bearing - heading + 180) % 360 - 180) < 1.0
            checked += 1
    assert checked > 500


def test_random_waypoint_pauses_at_waypoints() -> None:
    phone = RandomWaypoint(AREA, TRAVEL_MODES["walk"], rng(4))
    speeds = [phone.speed(float(t)) for t in np.arange(0.0, 10 * HOUR, 1.0)]
    paused = sum(1 for s in speeds if s == 0.0) / len(speeds)
    assert 0.01 < paused < 0.15  # ~60 s mean pause per ~1000 s leg


def test_random_waypoint_is_deterministic_and_refuses_going_back() -> None:
    a = RandomWaypoint(AREA, TRAVEL_MODES["walk"], rng(5))
    b = RandomWaypoint(AREA, TRAVEL_MODES["walk"], rng(5))
    c = RandomWaypoint(AREA, TRAVEL_MODES["walk"], rng(6))
    times = [float(t) for t in range(0, 7200, 60)]
    track = [a.position(t) for t in times]
    assert track == [b.position(t) for t in times]
    assert track != [c.position(t) for t in times]
    with pytest.raises(ValueError, match="backwards"):
        a.position(-1.0)


# ---- Gauss-Markov --------------------------------------------------------------------------------


def lag1(values: list[float]) -> float:
    x = np.asarray(values) - np.mean(values)
    return float(np.dot(x[:-1], x[1:]) / np.dot(x, x))


@pytest.mark.parametrize("alpha", [0.4, 0.7])
def test_gauss_markov_speed_autocorrelation_follows_alpha(alpha: float) -> None:
    step = 10.0
    phone = GaussMarkov(AREA, TRAVEL_MODES["walk"], rng(7), alpha=alpha, step_s=step)
    speeds = [phone.speed(step * (k + 0.5)) for k in range(20_000)]
    # Standard error of a lag-1 autocorrelation ~ sqrt((1 - alpha^2) / n) ~ 0.006.
    assert lag1(speeds) == pytest.approx(alpha, abs=0.03)
    assert lag1(speeds[::2]) == pytest.approx(alpha**2, abs=0.04)  # AR(1): lag k gives alpha^k
    assert np.mean(speeds) == pytest.approx(1.0, rel=0.03)


def test_gauss_markov_stays_in_the_area_even_when_fast() -> None:
    small = Area(-33.87, 151.21, 300.0)
    centre = (small.latitude, small.longitude)
    phone = GaussMarkov(small, TRAVEL_MODES["drive"], rng(8), alpha=0.7, step_s=30.0)
    distances = [metres(centre, phone.position(float(t))) for t in np.arange(0.0, 20 * HOUR, 7.0)]
    assert max(distances) <= small.radius_m * 1.01
    assert np.percentile(distances, 90) > 0.5 * small.radius_m  # it does roam, not hide at the centre


def test_gauss_markov_moves_at_its_speed_and_heading() -> None:
    phone = GaussMarkov(AREA, TRAVEL_MODES["cycle"], rng(9), alpha=0.5, step_s=30.0)
    for k in range(300):
        t = 30.0 * k + 5.0
        speed, heading = phone.speed(t), phone.heading(t)
        a, b = phone.position(t), phone.position(t + 10.0)
        assert 3.5 <= speed <= 5.5 and 0.0 <= heading < 360.0
        assert metres(a, b) == pytest.approx(10.0 * speed, rel=0.01)


def test_gauss_markov_is_deterministic() -> None:
    a = GaussMarkov(AREA, TRAVEL_MODES["walk"], rng(10))
    b = GaussMarkov(AREA, TRAVEL_MODES["walk"], rng(10))
    c = GaussMarkov(AREA, TRAVEL_MODES["walk"], rng(11))
    times = [float(t) for t in range(0, 7200, 45)]
    track = [a.position(t) for t in times]
    assert track == [b.position(t) for t in times]
    assert track != [c.position(t) for t in times]
    with pytest.raises(ValueError, match="backwards"):
        a.position(0.0)
    with pytest.raises(ValueError):
        GaussMarkov(AREA, TRAVEL_MODES["walk"], rng(10), alpha=1.5)


# ---- GPS -----------------------------------------------------------------------------------------

TRUE = (AREA.latitude, AREA.longitude)


def fixes(provider: str, sky: str, n: int = 4000, seed: int = 12) -> list[Fix]:
    gps = Gps(rng(seed, concern=Concern.GPS), {provider: 1.0})
    out = []
    for k in range(n):
        fix = gps.fix(float(k), TRUE[0], TRUE[1], sky, 1.2, 45.0)  # type: ignore[arg-type]
        assert fix is not None
        out.append(fix)
    return out


def errors(fs: list[Fix]) -> np.ndarray:
    per_lat, per_lon = metres_per_degree(TRUE[0])
    return np.array(
        [math.hypot((f.latitude - TRUE[0]) * per_lat, (f.longitude - TRUE[1]) * per_lon) for f in fs]
    )


def test_gps_open_sky_is_4_9_m_at_95_percent() -> None:
    fs = fixes("gps", "open")
    assert {f.provider for f in fs} == {"gps"}
    assert np.percentile(errors(fs), 95) == pytest.approx(4.9, rel=0.1)
    assert np.median([f.accuracy for f in fs]) == pytest.approx(3.0, abs=0.1)  # the 68% radius


def test_gps_urban_mean_error_is_7_to_13_m() -> None:
    fs = fixes("gps", "urban")
    assert 7.0 < errors(fs).mean() < 13.0
    assert errors(fs).mean() == pytest.approx(10.0, rel=0.1)


@pytest.mark.parametrize(("provider", "sky"), [("fused", "open"), ("network", "urban"), ("gps", "indoor")])
def test_coarse_providers_are_about_100_m(provider: str, sky: str) -> None:
    fs = fixes(provider, sky)
    assert {f.provider for f in fs} == {"network" if provider == "gps" else provider}  # indoor fallback
    assert np.median([f.accuracy for f in fs]) == pytest.approx(100.0, rel=0.1)
    assert 60 < np.median(errors(fs)) < 120  # Rayleigh median ~ 0.78 x the 68% radius


@pytest.mark.parametrize(("provider", "sky"), [("gps", "open"), ("gps", "urban"), ("fused", "indoor")])
def test_reported_accuracy_is_the_68_percent_radius(provider: str, sky: str) -> None:
    fs = fixes(provider, sky)
    within = np.mean(errors(fs) <= np.array([f.accuracy for f in fs]))
    assert within == pytest.approx(0.68, abs=0.03)


def test_tunnel_gives_no_fix() -> None:
    gps = Gps(rng(13, concern=Concern.GPS))
    assert gps.fix(0.0, TRUE[0], TRUE[1], "tunnel", 10.0, 90.0) is None


def test_fixes_are_rounded_and_unique_even_when_stationary() -> None:
    gps = Gps(rng(14, concern=Concern.GPS), {"gps": 1.0})
    n = 20_000
    fs = [gps.fix(float(k), TRUE[0], TRUE[1], "open", 0.0, 0.0) for k in range(n)]
    coords = [(f.latitude, f.longitude) for f in fs if f is not None]
    assert len(coords) == n
    assert len(set(coords)) == n  # ~2 m errors on a 1 cm grid: hundreds of raw collisions to nudge
    for lat, lon in coords:
        assert lat == round(lat, 7) and lon == round(lon, 7)
        assert len(repr(lat).split(".")[1]) <= 7
    # Speed and heading: reported by gps (no heading when still), withheld by network.
    assert all(f is not None and f.speed == 0.0 and f.heading is None for f in fs)
    network = Gps(rng(15, concern=Concern.GPS), {"network": 1.0}).fix(
        1.0, TRUE[0], TRUE[1], "open", 2.0, 370.0
    )
    assert network is not None and network.speed is None and network.heading is None
    moving = Gps(rng(15, concern=Concern.GPS), {"gps": 1.0}).fix(1.0, TRUE[0], TRUE[1], "open", 2.0, 370.0)
    assert moving is not None and moving.speed == 2.0 and moving.heading == pytest.approx(10.0)


def test_provider_mix_is_respected() -> None:
    gps = Gps(rng(16, concern=Concern.GPS), {"gps": 0.5, "fused": 0.3, "network": 0.2})
    fs = [gps.fix(float(k), TRUE[0], TRUE[1], "urban", 1.0, 0.0) for k in range(10_000)]
    share = {p: sum(1 for f in fs if f is not None and f.provider == p) / 10_000 for p in ("gps", "fused")}
    assert share["gps"] == pytest.approx(0.5, abs=0.03) and share["fused"] == pytest.approx(0.3, abs=0.03)
    with pytest.raises(ValueError):
        Gps(rng(16), {"galileo": 1.0})
