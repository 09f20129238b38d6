"""Cellular and Wi-Fi radios as RRC state machines written down as data, with analytic energy.

How a phone radio spends energy
-------------------------------
A radio in IDLE draws (almost) nothing above the phone's baseline: paging and cell measurements are
part of the measured idle current, so this module counts only power *above* that baseline. To send
or receive, an idle radio must first be *promoted* (RRC connection set-up: 260 ms on LTE, about 2 s
on 3G), paying a promotion power and delaying the first packet. After the last packet the network
keeps the radio in high-power states for a *tail* (LTE: continuous reception then DRX, ~11.6 s;
3G: DCH, then FACH, optionally a PCH state) before releasing it to IDLE. A transfer during the tail
restarts it. So the cost of a small message is dominated by promotion + tail, not by its bytes, and
messages that share one tail share its cost (Huang et al., MobiSys 2012; Qian et al., IMC 2010).

The rules, as data
------------------
A :class:`RadioModel` is a promotion (delay, power) from IDLE plus an ordered tuple of tail
:class:`RrcPhase` s. After a transfer the radio walks the phases in order, each for its duration at
its power, then is IDLE. A transfer arriving:

* while IDLE: suffers the model's promotion delay; the tail starts when the promotion ends;
* during a promotion: rides it, suffering the remaining promotion time;
* in a phase whose ``stay_*_bytes`` admit it (3G FACH carrying a small packet on the common
  channel): restarts *that* phase, no delay;
* in a phase with a ``wake_s`` (3G FACH->DCH, PCH->DCH): suffers that re-promotion, then the tail
  restarts from the first phase;
* in any other phase (already connected): no delay, the tail restarts from the first phase.

Bytes cost ``up_j_per_byte`` / ``down_j_per_byte`` on top (Huang's alpha terms; the connected-state
base power is already in the phase powers, and air time of small messages is neglected).

Accounting is analytic: a :class:`Radio` remembers one *episode* (optional promotion, then the phases
from an anchor time) and integrates it in closed form when asked; nothing polls. On a switch to a
different technology the old episode is retired and runs out its tail (the old network's inactivity
timer keeps going; a handover does not power the modem down); a same-model switch keeps the RRC
state (a horizontal handover). :meth:`Radio.off` stops everything.

Models and sources
------------------
Powers are in watts; currents convert at :data:`SUPPLY_V`. ``RADIO_LTE``, ``RADIO_WIFI`` and
``RADIO_3G_ARO`` carry the AT&T ARO / Huang 2012 parameters. ``RADIO_3G_HAVERINEN`` is *fitted* to the
keep-alive currents Haverinen et al. measured in a live WCDMA network (VTC 2007); the naive ARO 3G
profile predicts ~3x their current at a 20 s keep-alive. The fleet uses the calibrated profile for
3G by default (``RADIO_MODELS["3g"]``); the fit is documented next to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

SUPPLY_V = 3.7
"""Supply voltage (V) for current <-> power conversions; Haverinen et al. report currents at it."""


def _j_per_byte(mw_per_mbps: float) -> float:
    """Energy per byte from a power slope in mW per Mbit/s (Huang 2012's alpha): J per byte."""
    return mw_per_mbps * 1e-3 * 8e-6


@dataclass(frozen=True, slots=True)
class RrcPhase:
    """One tail state of an RRC machine.

    Attributes:
        name: state name (``"DCH"``, ``"FACH"``, ``"DRX"``...).
        duration_s: inactivity timer: how long the radio stays here without traffic.
        power_w: power above the idle baseline while here.
        wake_s: re-promotion delay a transfer arriving here suffers; ``wake_power_w`` its power.
        stay_up_bytes: transfers within ``stay_up_bytes`` up and ``stay_down_bytes`` down are
            carried here and restart this state's timer (both 0: never).
    """

    name: str
    duration_s: float
    power_w: float
    wake_s: float = 0.0
    wake_power_w: float = 0.0
    stay_up_bytes: int = 0
    stay_down_bytes: int = 0

    def __post_init__(self) -> None:
        if min(self.duration_s, self.power_w, self.wake_s, self.wake_power_w) < 0:
            raise ValueError(f"RRC phase {self.name}: durations and powers must be >= 0")


@dataclass(frozen=True, slots=True)
class RadioModel:
    """An RRC state machine as data: promotion from IDLE, then tail phases in order.

    Attributes:
        name: model name, e.g. ``"lte"``.
        promotion_s: IDLE -> connected promotion delay; ``promotion_power_w`` its power.
        phases: tail states, walked in order after the last transfer, then IDLE.
        up_j_per_byte: extra energy per uplink byte; ``down_j_per_byte`` per downlink byte.
    """

    name: str
    promotion_s: float
    promotion_power_w: float
    phases: tuple[RrcPhase, ...]
    up_j_per_byte: float
    down_j_per_byte: float

    def __post_init__(self) -> None:
        if min(self.promotion_s, self.promotion_power_w, self.up_j_per_byte, self.down_j_per_byte) < 0:
            raise ValueError(f"radio model {self.name}: parameters must be >= 0")

    @property
    def tail_s(self) -> float:
        """Total tail time after the last transfer."""
        return sum(p.duration_s for p in self.phases)

    @property
    def tail_j(self) -> float:
        """Energy of one full tail."""
        return sum(p.duration_s * p.power_w for p in self.phases)


# LTE: Huang et al. MobiSys 2012 Table 3 / AT&T ARO ProfileLTE defaults. Promotion 260 ms at 1.21 W;
# inactivity timer Ti = 100 ms, then DRX until T_tail = 11.576 s after the last packet, at the ARO tail
# power 1.06 W throughout. Idle paging (0.594 W for 43 ms every 1.28 s) is in the device baseline.
# Bytes: alpha_u = 438.39, alpha_d = 51.97 mW/Mbps. One beat every 30 s: 0.315 + 12.27 = 12.6 J,
# 0.42 W (MODELS.md).
RADIO_LTE = RadioModel(
    name="lte",
    promotion_s=0.260,
    promotion_power_w=1.21,
    phases=(
        RrcPhase("CONNECTED", 0.100, 1.06),
        RrcPhase("DRX", 11.476, 1.06),
    ),
    up_j_per_byte=_j_per_byte(438.39),
    down_j_per_byte=_j_per_byte(51.97),
)

# Wi-Fi: ARO WiFi.conf: active 0.403 W, tail 0.25 s, no promotion state (standby 0.02 W is in the
# baseline). Bytes (~): Huang 2012 Wi-Fi alpha_u = 283.17, alpha_d = 137.01 mW/Mbps.
RADIO_WIFI = RadioModel(
    name="wifi",
    promotion_s=0.0,
    promotion_power_w=0.0,
    phases=(RrcPhase("ACTIVE", 0.25, 0.403),),
    up_j_per_byte=_j_per_byte(283.17),
    down_j_per_byte=_j_per_byte(137.01),
)

# 3G as ARO models it (inspire.conf, HTC Inspire on AT&T): IDLE->DCH 2.0 s average (1.5-4 s), DCH->FACH
# 4 s, FACH->IDLE 10 s, DCH 0.60 W, FACH 0.38 W; FACH->DCH 1.5 s; packets within the RLC buffer
# thresholds (543 B up, 475 B down) are carried on FACH. Promotion powers: ARO Profile3G defaults
# POWER_IDLE_DCH 0.53 W, POWER_FACH_DCH 0.55 W. Bytes (~): Huang 2012 3G alpha_u = 868.98,
# alpha_d = 122.12 mW/Mbps. A 20 s keep-alive costs ~100 mA here, 3x what Haverinen measured.
RADIO_3G_ARO = RadioModel(
    name="3g-aro",
    promotion_s=2.0,
    promotion_power_w=0.53,
    phases=(
        RrcPhase("DCH", 4.0, 0.60),
        RrcPhase("FACH", 10.0, 0.38, wake_s=1.5, wake_power_w=0.55, stay_up_bytes=543, stay_down_bytes=475),
    ),
    up_j_per_byte=_j_per_byte(868.98),
    down_j_per_byte=_j_per_byte(122.12),
)

# 3G calibrated to Haverinen, Siren & Eronen, "Energy consumption of always-on applications in WCDMA
# networks", VTC 2007-Spring, Table 2 (3G average current vs keep-alive interval T):
#     T = 20 s -> 34 mA, 40 -> 24, 150 -> 16, 300 -> 14, no keep-alive -> 6.1 mA.
# THE FIT. With the idle current I0 = 6.1 mA (the device baseline), the four points obey
#     I(T) = I0 + a + b / T
# almost exactly: a relative least-squares fit gives a = 6.73 mA (a state kept while keep-alives flow)
# and b = 432 mAs per keep-alive (1.60 J at 3.7 V), residuals +1.3 %, -1.5 %, -1.8 %, +1.9 %.
# Physically (Haverinen's Fig. 1 network has CELL_PCH): every keep-alive pays a short DCH + FACH
# burst, and between keep-alives the radio waits in CELL_PCH, whose timer outlasts 300 s. So:
#   * PCH power = a * V = 0.025 W (4 % of DCH; PCH states draw 1-2 % of DCH per operator reports);
#   * DCH and FACH keep the ARO powers 0.60 / 0.38 W and ARO's 4:10 timer ratio, scaled by k to
#     match b: b*V = 0.5 s*(0.53-0.025) W + k*(4*(0.60-0.025) + 10*(0.38-0.025)) W*s -> k = 0.23,
#     rounded to DCH 1.0 s and FACH 2.2 s: this network released the dedicated channel quickly;
#   * PCH -> DCH costs 0.5 s at the ARO promotion power (ASSUME: a cell update, not a new
#     connection); IDLE -> DCH stays ARO's 2.0 s at 0.53 W; PCH -> IDLE after 30 min (ASSUME).
# Check (tests/simulator/test_radio_battery.py, one simulated hour from IDLE, 3.7 V):
#     20 s -> 34.7 mA, 40 s -> 23.8, 150 s -> 15.8, 300 s -> 14.4, none -> 6.1 (all within 3 %);
# the ARO profile gives 104, 55, 19, 12.6 mA.
RADIO_3G_HAVERINEN = RadioModel(
    name="3g-haverinen",
    promotion_s=2.0,
    promotion_power_w=0.53,
    phases=(
        RrcPhase("DCH", 1.0, 0.60),
        RrcPhase("FACH", 2.2, 0.38, wake_s=1.5, wake_power_w=0.55, stay_up_bytes=543, stay_down_bytes=475),
        RrcPhase("PCH", 1800.0, 0.025, wake_s=0.5, wake_power_w=0.53),
    ),
    up_j_per_byte=_j_per_byte(868.98),
    down_j_per_byte=_j_per_byte(122.12),
)

RADIO_MODELS: Mapping[str, RadioModel] = {
    "lte": RADIO_LTE,
    "3g": RADIO_3G_HAVERINEN,  # the fleet's default 3G: calibrated to measured keep-alive currents
    "3g-haverinen": RADIO_3G_HAVERINEN,
    "3g-aro": RADIO_3G_ARO,
    "wifi": RADIO_WIFI,
}
"""Radio models by name; ``"3g"`` is the calibrated Haverinen profile."""


class _Episode:
    """An optional promotion [promo_start, promo_end) then ``phases[phase:]`` from ``anchor``."""

    __slots__ = ("anchor", "model", "phase", "promo_end", "promo_power", "promo_start")

    def __init__(self, model: RadioModel, now: float) -> None:
        self.model = model
        self.restart(now, 0.0, 0.0, len(model.phases))  # IDLE

    def restart(self, now: float, promo_s: float, promo_power: float, phase: int) -> None:
        self.promo_start = now
        self.promo_end = now + promo_s
        self.promo_power = promo_power
        self.phase = phase
        self.anchor = now + promo_s

    def energy(self, now: float) -> float:
        e = 0.0
        if now > self.promo_start:
            e = self.promo_power * (min(now, self.promo_end) - self.promo_start)
        t = self.anchor
        if now > t:
            phases = self.model.phases
            for i in range(self.phase, len(phases)):  # no slice: this runs for every frame
                ph = phases[i]
                end = t + ph.duration_s
                if now <= end:
                    return e + ph.power_w * (now - t)
                e += ph.power_w * ph.duration_s
                t = end
        return e

    def phase_at(self, now: float) -> int:
        """Index of the phase at ``now``; -1 during a promotion, len(phases) when IDLE."""
        if now < self.promo_end:
            return -1
        t = self.anchor
        phases = self.model.phases
        for i in range(self.phase, len(phases)):
            t += phases[i].duration_s
            if now < t:
                return i
        return len(phases)

    def end(self) -> float:
        return self.anchor + sum(p.duration_s for p in self.model.phases[self.phase :])


class Radio:
    """One phone's radio: RRC state, promotion delays and analytic energy.

    Calls must come with non-decreasing ``now`` (seconds of model time).

    Args:
        model: the radio technology's RRC machine.
    """

    __slots__ = ("_banked", "_ep", "_last", "_model", "_on", "_retired")

    def __init__(self, model: RadioModel) -> None:
        self._model = model
        self._on = True
        self._banked = 0.0
        self._last = -math.inf
        self._ep = _Episode(model, 0.0)
        self._retired: list[_Episode] = []

    @property
    def model(self) -> RadioModel:
        """The current radio technology."""
        return self._model

    @property
    def is_on(self) -> bool:
        """False after :meth:`off` until the next :meth:`switch`."""
        return self._on

    def _advance(self, now: float) -> float:
        # In ``run`` a frame is dated at the wall clock's mapped time, which may be ahead of the
        # model event processed next by the loop's lag (milliseconds): an earlier time is "now".
        if now < self._last:
            now = self._last
        self._last = now
        if self._retired:
            self._retire(now)
        return now

    def _retire(self, now: float) -> None:
        keep = []
        for ep in self._retired:
            if ep.end() <= now:
                self._banked += ep.energy(now)
            else:
                keep.append(ep)
        self._retired = keep

    def transfer(self, now: float, up_bytes: int = 0, down_bytes: int = 0) -> float:
        """Send ``up_bytes`` and receive ``down_bytes`` at ``now``.

        Args:
            now: model time of the transfer.
            up_bytes: bytes sent.
            down_bytes: bytes received.

        Returns:
            The promotion delay (s) the transfer suffers before its first byte can go: the model's
            promotion from IDLE, what is left of a promotion in progress, a phase's re-promotion
            (3G FACH/PCH -> DCH), or 0 when the radio is already connected.

        Raises:
            RuntimeError: the radio is off.
            ValueError: byte counts are negative.
        """
        if not self._on:
            raise RuntimeError("transfer on a radio that is off")
        if up_bytes < 0 or down_bytes < 0:
            raise ValueError("byte counts must be >= 0")
        # Every frame comes through here: _advance and phase_at are inlined (same arithmetic).
        if now < self._last:  # see _advance
            now = self._last
        else:
            self._last = now
        if self._retired:
            self._retire(now)
        model = self._model
        ep = self._ep
        self._banked += up_bytes * model.up_j_per_byte + down_bytes * model.down_j_per_byte
        if now < ep.promo_end:  # ride the promotion in progress
            return ep.promo_end - now
        phases = model.phases
        n = len(phases)
        i = ep.phase
        t = ep.anchor
        while i < n:
            t += phases[i].duration_s
            if now < t:
                break
            i += 1
        self._banked += ep.energy(now)
        if i >= n:  # IDLE
            ep.restart(now, model.promotion_s, model.promotion_power_w, 0)
            return model.promotion_s
        ph = model.phases[i]
        if (ph.stay_up_bytes or ph.stay_down_bytes) and (
            up_bytes <= ph.stay_up_bytes and down_bytes <= ph.stay_down_bytes
        ):
            ep.restart(now, 0.0, 0.0, i)
            return 0.0
        ep.restart(now, ph.wake_s, ph.wake_power_w, 0)
        return ph.wake_s

    def energy_j(self, now: float) -> float:
        """Total radio energy (J, above the idle baseline) spent up to ``now``, tails included."""
        now = max(now, self._last)  # see _advance
        e = self._banked + self._ep.energy(now)
        for ep in self._retired:
            e += ep.energy(now)
        return e

    def state(self, now: float) -> str:
        """RRC state name at ``now``: ``"OFF"``, ``"IDLE"``, ``"PROMOTION"`` or a phase name."""
        if not self._on:
            return "OFF"
        i = self._ep.phase_at(now)
        if i < 0:
            return "PROMOTION"
        if i >= len(self._model.phases):
            return "IDLE"
        return self._model.phases[i].name

    def tail_end(self) -> float:
        """Model time at which the current radio returns to IDLE if nothing more is sent."""
        return self._ep.end() if self._on else self._last

    def switch(self, model: RadioModel, now: float) -> None:
        """Change network (handover or LTE <-> Wi-Fi), or turn the radio back on after :meth:`off`.

        A switch to the same model keeps the RRC state (horizontal handover). A switch to another
        model leaves the old radio to run out its tail and starts the new one IDLE, so the next
        transfer pays the new model's promotion.

        Args:
            model: the new radio technology.
            now: model time of the change.
        """
        now = self._advance(now)
        if self._on and model == self._model:
            return
        if self._on and self._ep.end() > now:
            self._retired.append(self._ep)
        else:
            self._banked += self._ep.energy(now)
        self._model = model
        self._ep = _Episode(model, now)
        self._on = True

    def off(self, now: float) -> None:
        """Power the radio down at ``now`` (phone off, airplane mode): all tails stop here."""
        now = self._advance(now)
        if not self._on:
            return
        self._banked = self.energy_j(now)
        self._retired = []
        self._ep = _Episode(self._model, now)
        self._on = False
