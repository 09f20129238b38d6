"""Where a phone is, how fast it moves, and what its location provider reports.

Two mobility models with one API (``position(t)``, ``speed(t)``, ``heading(t)`` for non-decreasing
``t``). Both are lazy: they advance their trajectory only as far as the latest query and schedule no
SimPy events, so a phone that asks for its position twice a minute costs a few arithmetic operations
per ask.

- :class:`RandomWaypoint`: pick a point uniformly in the area, go there in a straight line at a speed
  drawn uniformly from ``[min_speed, max_speed]``, pause, repeat. The minimum speed must be positive:
  with a zero minimum the time-average speed decays towards zero (Yoon et al., INFOCOM 2003), because
  slow legs last long; with ``v_min > 0`` it settles at ``(v_max - v_min) / ln(v_max / v_min)``.
  Waypoints are placed with geopy's geodesic ``destination`` (once per leg); inside a leg the
  position is interpolated linearly in latitude and longitude (equirectangular, exact enough at
  city scale and a few hundred nanoseconds a call).
- :class:`GaussMarkov` (Camp et al. 2002): speed and direction are AR(1) processes with memory
  ``alpha``, updated every ``step_s``; near the edge of the area the mean direction turns towards
  the centre, and a step that would leave the area is turned inwards. It moves in local metres
  around the area's centre, so a step costs no geodesic call.

:class:`Gps` turns a true position into what Android would report: a provider (gps, fused or
network), an accuracy (the 68% radius, as ``Location.getAccuracy()``), and a position displaced by a
circular Gaussian error whose 68% radius is that accuracy. Coordinates are rounded to 7 decimals (the
Beacon API's limit) and made unique per phone, since the backend keys location history on them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
from geopy.distance import geodesic  # type: ignore[import-untyped]
from geopy.point import Point  # type: ignore[import-untyped]

_GEODESIC = geodesic()  # reused: building a Distance per call doubles the cost (~45 -> ~23 us)

Sky = Literal["open", "urban", "indoor", "tunnel"]
Provider = Literal["gps", "fused", "network"]


def metres_per_degree(latitude: float) -> tuple[float, float]:
    """Metres per degree of latitude and of longitude at ``latitude`` on WGS84 (series to cm)."""
    phi = math.radians(latitude)
    per_lat = 111_132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
    per_lon = 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)
    return per_lat, per_lon


@dataclass(frozen=True, slots=True)
class TravelMode:
    """How a kind of traveller moves: a speed range (m/s) and a pause range (s) at each waypoint."""

    name: str
    min_speed_mps: float
    max_speed_mps: float
    pause_min_s: float
    pause_max_s: float

    def __post_init__(self) -> None:
        if not 0 <= self.min_speed_mps <= self.max_speed_mps or self.max_speed_mps <= 0:
            raise ValueError(f"{self.name}: need 0 <= min_speed <= max_speed, max_speed > 0")
        if not 0 <= self.pause_min_s <= self.pause_max_s:
            raise ValueError(f"{self.name}: need 0 <= pause_min <= pause_max")


TRAVEL_MODES: dict[str, TravelMode] = {
    mode.name: mode
    for mode in (
        # The ONE simulator `default_settings.txt`: pedestrians 0.5-1.5 m/s, pause 0-120 s.
        TravelMode("walk", 0.5, 1.5, 0.0, 120.0),
        # ~4.5 m/s (~); range ASSUME +-1 m/s; pauses ASSUME 0-60 s (crossings).
        TravelMode("cycle", 3.5, 5.5, 0.0, 60.0),
        # Urban driving 2.7-13.9 m/s (the ONE, cars); pauses ASSUME 0-60 s (lights, parking).
        TravelMode("drive", 2.7, 13.9, 0.0, 60.0),
        # Trams 7-10 m/s (the ONE); dwell at stops ASSUME 10-60 s.
        TravelMode("transit", 7.0, 10.0, 10.0, 60.0),
    )
}


@dataclass(frozen=True, slots=True)
class Area:
    """A disc on the Earth: centre ``latitude``/``longitude`` (degrees) and ``radius_m``."""

    latitude: float
    longitude: float
    radius_m: float

    def __post_init__(self) -> None:
        if not -85.0 <= self.latitude <= 85.0 or self.radius_m <= 0:
            raise ValueError("area needs |latitude| <= 85 and a positive radius")


class RandomWaypoint:
    """Random waypoint mobility with a positive minimum speed.

    Args:
        area: Where the phone moves; it starts at a uniform point inside.
        mode: Speed and pause ranges.
        rng: The phone's mobility generator.
        min_speed_mps: Lowest leg speed, > 0; defaults to the mode's minimum.
        start_s: Model time of the first leg.
    """

    def __init__(
        self,
        area: Area,
        mode: TravelMode,
        rng: np.random.Generator,
        min_speed_mps: float | None = None,
        start_s: float = 0.0,
    ) -> None:
        low = mode.min_speed_mps if min_speed_mps is None else min_speed_mps
        if not 0 < low <= mode.max_speed_mps:
            raise ValueError("random waypoint needs 0 < min_speed_mps <= max speed (Yoon et al. 2003)")
        self._area = area
        self._mode = mode
        self._rng = rng
        self._low = low
        self._centre = Point(area.latitude, area.longitude)
        self._lat0, self._lon0 = self._waypoint()
        self._lat1, self._lon1 = self._lat0, self._lon0
        self._t0 = self._arrive = self._leave = start_s
        self._speed = 0.0
        self._heading = 0.0
        self._next_leg()

    def _waypoint(self) -> tuple[float, float]:
        """A point uniform in the area's disc, placed on the ellipsoid with geopy."""
        bearing = 360.0 * self._rng.random()
        distance = self._area.radius_m * math.sqrt(self._rng.random())
        point = _GEODESIC.destination(self._centre, bearing, distance=distance / 1000.0)  # km
        return float(point.latitude), float(point.longitude)

    def _next_leg(self) -> None:
        """Start the leg from the current waypoint at ``self._leave``."""
        self._lat0, self._lon0 = self._lat1, self._lon1
        self._lat1, self._lon1 = self._waypoint()
        per_lat, per_lon = metres_per_degree(0.5 * (self._lat0 + self._lat1))
        north = (self._lat1 - self._lat0) * per_lat
        east = (self._lon1 - self._lon0) * per_lon
        length = math.hypot(north, east)
        self._speed = self._low + (self._mode.max_speed_mps - self._low) * self._rng.random()
        if length > 0:
            self._heading = math.degrees(math.atan2(east, north)) % 360.0
        pause = (
            self._mode.pause_min_s + (self._mode.pause_max_s - self._mode.pause_min_s) * self._rng.random()
        )
        self._t0 = self._leave
        self._arrive = self._t0 + length / self._speed
        self._leave = self._arrive + pause

    def _advance(self, t: float) -> None:
        if t < self._t0:
            raise ValueError(f"time went backwards: {t} < {self._t0}")
        while t >= self._leave:
            self._next_leg()

    def position(self, t: float) -> tuple[float, float]:
        """True (latitude, longitude) at ``t``."""
        self._advance(t)
        if t >= self._arrive:
            return self._lat1, self._lon1
        f = (t - self._t0) / (self._arrive - self._t0)
        return self._lat0 + f * (self._lat1 - self._lat0), self._lon0 + f * (self._lon1 - self._lon0)

    def speed(self, t: float) -> float:
        """Ground speed at ``t`` in m/s (0 while paused)."""
        self._advance(t)
        return self._speed if t < self._arrive else 0.0

    def heading(self, t: float) -> float:
        """Direction of travel at ``t``, degrees clockwise from north in [0, 360)."""
        self._advance(t)
        return self._heading

    _lookahead: RandomWaypoint | None = None  # peek()'s private copy, for times past the drawn legs

    def peek(self, t: float) -> tuple[float, float]:
        """True (latitude, longitude) at ``t`` for a display, leaving this model exactly as it was.

        Answers what :meth:`position` would, but moves no state and draws nothing from the model's
        generator, so the phone's trajectory and its later answers are the same whether anything
        peeks or not, and ``t`` need not be monotonic. Within the leg drawn so far it interpolates
        that leg; past it, it asks a private copy of the model (its own copy of the generator's
        state, hence the very same path), made on first need. Before the current leg (the past is
        not kept) it answers the leg's start.
        """
        if t < self._leave:
            if t >= self._arrive:
                return self._lat1, self._lon1
            f = max(0.0, t - self._t0) / (self._arrive - self._t0)
            return self._lat0 + f * (self._lat1 - self._lat0), self._lon0 + f * (self._lon1 - self._lon0)
        return _ahead(self, t)


class GaussMarkov:
    """Gauss-Markov mobility (Camp, Boleng and Davies 2002).

    Each ``step_s`` the speed and direction update as
    ``x' = alpha x + (1 - alpha) mean + sqrt(1 - alpha^2) sigma w`` with ``w`` standard normal; the
    mean speed is the middle of the mode's range, sigma a sixth of the range (ASSUME, so +-3 sigma
    spans it; speeds are clipped to the range), the direction's sigma ASSUME 30 degrees.

    Args:
        area: Where the phone moves; it starts at a uniform point inside.
        mode: Speed range (pauses are not used).
        rng: The phone's mobility generator.
        alpha: Memory, 0 (random walk) to 1 (straight line); 0.4-0.7 typical (Camp et al. 2002).
        step_s: Seconds between updates. ASSUME 30 s: smooth enough for 30 s location updates.
        start_s: Model time of the first step.
    """

    DIRECTION_SIGMA_DEG = 30.0
    EDGE_BAND = 0.2  # outer fraction of the radius where the mean direction turns to the centre

    def __init__(
        self,
        area: Area,
        mode: TravelMode,
        rng: np.random.Generator,
        alpha: float = 0.55,
        step_s: float = 30.0,
        start_s: float = 0.0,
    ) -> None:
        if not 0.0 <= alpha <= 1.0 or step_s <= 0:
            raise ValueError("need 0 <= alpha <= 1 and step_s > 0")
        self._area = area
        self._mode = mode
        self._rng = rng
        self._alpha = alpha
        self._noise = math.sqrt(1.0 - alpha * alpha)
        self._step = step_s
        self._per_lat, self._per_lon = metres_per_degree(area.latitude)
        self._mean_speed = 0.5 * (mode.min_speed_mps + mode.max_speed_mps)
        self._speed_sigma = (mode.max_speed_mps - mode.min_speed_mps) / 6.0
        angle = 2.0 * math.pi * rng.random()
        r = area.radius_m * math.sqrt(rng.random())
        self._x, self._y = r * math.sin(angle), r * math.cos(angle)  # metres east, north of centre
        self._direction = 360.0 * rng.random()
        self._mean_direction = self._direction
        self._speed = self._mean_speed
        self._t0 = start_s
        self._dx, self._dy = self._displacement()

    def _displacement(self) -> tuple[float, float]:
        """Metres moved over one step at the current speed and direction, kept inside the area."""
        radius = self._area.radius_m
        length = self._speed * self._step
        rad = math.radians(self._direction)
        dx, dy = length * math.sin(rad), length * math.cos(rad)
        if math.hypot(self._x + dx, self._y + dy) > radius:
            # Turn inwards: straight at the centre (a chord of a disc stays inside it).
            rho = math.hypot(self._x, self._y)
            self._direction = math.degrees(math.atan2(-self._x, -self._y)) % 360.0
            self._mean_direction = self._direction
            length = min(length, radius + rho)
            rad = math.radians(self._direction)
            dx, dy = length * math.sin(rad), length * math.cos(rad)
        return dx, dy

    def _next_step(self) -> None:
        self._x += self._dx
        self._y += self._dy
        self._t0 += self._step
        a = self._alpha
        mode = self._mode
        if math.hypot(self._x, self._y) > (1.0 - self.EDGE_BAND) * self._area.radius_m:
            inward = math.degrees(math.atan2(-self._x, -self._y))
            self._mean_direction = (inward + 120.0 * (self._rng.random() - 0.5)) % 360.0
        w_speed, w_dir = self._rng.standard_normal(), self._rng.standard_normal()
        speed = a * self._speed + (1 - a) * self._mean_speed + self._noise * self._speed_sigma * w_speed
        self._speed = min(mode.max_speed_mps, max(mode.min_speed_mps, speed))
        turn = (self._mean_direction - self._direction + 180.0) % 360.0 - 180.0
        self._direction = (
            self._direction + (1 - a) * turn + self._noise * self.DIRECTION_SIGMA_DEG * w_dir
        ) % 360.0
        self._dx, self._dy = self._displacement()

    def _advance(self, t: float) -> None:
        if t < self._t0:
            raise ValueError(f"time went backwards: {t} < {self._t0}")
        while t >= self._t0 + self._step:
            self._next_step()

    def position(self, t: float) -> tuple[float, float]:
        """True (latitude, longitude) at ``t``."""
        self._advance(t)
        f = (t - self._t0) / self._step
        x, y = self._x + f * self._dx, self._y + f * self._dy
        return self._area.latitude + y / self._per_lat, self._area.longitude + x / self._per_lon

    def speed(self, t: float) -> float:
        """Ground speed at ``t`` in m/s."""
        self._advance(t)
        return self._speed

    def heading(self, t: float) -> float:
        """Direction of travel at ``t``, degrees clockwise from north in [0, 360)."""
        self._advance(t)
        return self._direction

    _lookahead: GaussMarkov | None = None  # peek()'s private copy, for times past the drawn step

    def peek(self, t: float) -> tuple[float, float]:
        """True (latitude, longitude) at ``t`` for a display, leaving this model exactly as it was.

        Answers what :meth:`position` would, but moves no state and draws nothing from the model's
        generator, so the phone's trajectory and its later answers are the same whether anything
        peeks or not, and ``t`` need not be monotonic. Within the step drawn so far it interpolates
        that step; past it, it asks a private copy of the model (its own copy of the generator's
        state, hence the very same path), made on first need. Before the current step (the past is
        not kept) it answers the step's start.
        """
        if t < self._t0 + self._step:
            f = max(0.0, t - self._t0) / self._step
            x, y = self._x + f * self._dx, self._y + f * self._dy
            return self._area.latitude + y / self._per_lat, self._area.longitude + x / self._per_lon
        return _ahead(self, t)


# A circular Gaussian error with per-axis sigma has radial quantile q at sigma * sqrt(-2 ln(1 - q)).
R68 = math.sqrt(-2.0 * math.log(0.32))  # Android's accuracy is the 68% radius
R95 = math.sqrt(-2.0 * math.log(0.05))
RAYLEIGH_MEAN = math.sqrt(math.pi / 2.0)

GPS_OPEN_R95_M = 4.9  # GPS.gov (~): 4.9 m (95%) for a phone under open sky
GPS_URBAN_MEAN_M = (7.0, 13.0)  # Merry & Bettinger, PLOS ONE 2019: 7-13 m mean error, phones
COARSE_ACCURACY_M = 100.0  # Google docs (~): balanced / network "about 100 m"; ASSUME indoors too
COARSE_LOG_SIGMA = 0.3  # ASSUME: per-fix spread of coarse accuracy (95% within ~55-180 m)


def _default_mix() -> dict[str, float]:
    # ASSUME: an emergency app asks for high accuracy most of the time.
    return {"gps": 0.7, "fused": 0.2, "network": 0.1}


_M = TypeVar("_M", RandomWaypoint, GaussMarkov)


def _ahead(model: _M, t: float) -> tuple[float, float]:
    """``model``'s position at ``t`` from its private look-ahead copy (made, or made again when ``t``
    is before the copy's own time): the same generator state, so the same path, but the model itself
    moves no state and draws nothing."""
    ahead = model._lookahead
    if ahead is None or t < ahead._t0:
        ahead = copy.copy(model)
        ahead._rng = copy.deepcopy(model._rng)
        ahead._lookahead = None
        model._lookahead = ahead
    return ahead.position(t)


@dataclass(frozen=True, slots=True)
class Fix:
    """One location report, as the app would send it.

    Attributes:
        t: Model time of the fix, seconds.
        latitude: Degrees, rounded to 7 decimals, unique per :class:`Gps`.
        longitude: Degrees, rounded to 7 decimals.
        accuracy: Radius of 68% confidence, metres (0.1 m resolution).
        provider: "gps", "fused" or "network".
        speed: m/s (None from the network provider).
        heading: Degrees clockwise from north (None from the network provider or when still).
    """

    t: float
    latitude: float
    longitude: float
    accuracy: float
    provider: Provider
    speed: float | None
    heading: float | None


class Gps:
    """A phone's location provider.

    Args:
        rng: The phone's GPS generator.
        provider_mix: Weights of the provider each fix is requested from ("gps", "fused",
            "network"); "gps" falls back to "network" indoors.
    """

    def __init__(self, rng: np.random.Generator, provider_mix: Mapping[str, float] | None = None) -> None:
        mix = dict(_default_mix() if provider_mix is None else provider_mix)
        if (
            set(mix) - {"gps", "fused", "network"}
            or any(w < 0 for w in mix.values())
            or sum(mix.values()) <= 0
        ):
            raise ValueError("provider_mix: non-negative weights for gps, fused, network")
        total = sum(mix.values())
        self._cumulative = (
            mix.get("gps", 0.0) / total,
            (mix.get("gps", 0.0) + mix.get("fused", 0.0)) / total,
        )
        self._random = rng.random  # bound once: fixes are a hot path
        self._normal = rng.standard_normal
        self._seen: set[tuple[int, int]] = set()
        self._scale_at = math.nan  # latitude the cached metres-per-degree were computed at
        self._scale = (1.0, 1.0)

    def _provider(self) -> Provider:
        u = self._random()
        gps, fused = self._cumulative
        return "gps" if u < gps else "fused" if u < fused else "network"

    def fix(self, t: float, lat: float, lon: float, sky: Sky, speed: float, heading: float) -> Fix | None:
        """What the provider reports for a phone truly at (``lat``, ``lon``) at ``t``.

        Args:
            t: Model time.
            lat: True latitude, degrees.
            lon: True longitude, degrees.
            sky: "open", "urban", "indoor" (no GPS) or "tunnel" (no fix at all).
            speed: True speed, m/s.
            heading: True heading, degrees.

        Returns:
            The fix, or None in a tunnel.
        """
        if sky == "tunnel":
            return None
        provider = self._provider()
        if provider == "gps" and sky == "indoor":
            provider = "network"
        if provider == "gps":
            if sky == "open":
                sigma = GPS_OPEN_R95_M / R95
            else:
                low, high = GPS_URBAN_MEAN_M
                sigma = (low + (high - low) * self._random()) / RAYLEIGH_MEAN
        else:
            accuracy = COARSE_ACCURACY_M * math.exp(COARSE_LOG_SIGMA * self._normal())
            sigma = accuracy / R68
        if not abs(lat - self._scale_at) < 0.01:  # ~1 km: the scale changes by < 0.02%
            self._scale_at, self._scale = lat, metres_per_degree(lat)
        per_lat, per_lon = self._scale
        lat_i = round((lat + sigma * self._normal() / per_lat) * 1e7)
        lon_i = round((lon + sigma * self._normal() / per_lon) * 1e7)
        while (lat_i, lon_i) in self._seen:
            lat_i += 1  # nudge by 1e-7 degree (~1 cm) until unseen
        self._seen.add((lat_i, lon_i))
        moving = provider != "network"
        return Fix(
            t,
            lat_i / 1e7,
            lon_i / 1e7,
            round(sigma * R68, 1),
            provider,
            speed if moving else None,
            heading % 360.0 if moving and speed > 0 else None,
        )
