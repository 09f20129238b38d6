"""Radio RRC energy (calibrated against measurements) and battery drain and thresholds."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from simulator.device.battery import (
    ANDROID_SAVER_PCT,
    DEVICE_MODELS,
    GALAXY_S24,
    IOS_SAVER_PCT,
    IPHONE_15,
    Battery,
)
from simulator.device.radio import (
    RADIO_3G_ARO,
    RADIO_3G_HAVERINEN,
    RADIO_LTE,
    RADIO_MODELS,
    RADIO_WIFI,
    SUPPLY_V,
    Radio,
    RadioModel,
)

HOUR = 3600.0
IDLE_MA = 6.1  # Haverinen et al. 2007, no keep-alive


def keepalive_current_ma(model: RadioModel, interval: float | None) -> float:
    """Average current over an hour of a phone sending a small keep-alive every ``interval`` s."""
    radio = Radio(model)
    if interval is not None:
        t = 0.0
        while t < HOUR:
            radio.transfer(t, 60, 60)
            t += interval
    baseline_j = IDLE_MA * 1e-3 * SUPPLY_V * HOUR
    return (radio.energy_j(HOUR) + baseline_j) / (HOUR * SUPPLY_V) * 1e3


# -- radio ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "measured_ma"), [(20.0, 34.0), (40.0, 24.0), (150.0, 16.0), (300.0, 14.0), (None, 6.1)]
)
def test_3g_calibration_reproduces_haverinen_2007(interval: float | None, measured_ma: float) -> None:
    assert keepalive_current_ma(RADIO_3G_HAVERINEN, interval) == pytest.approx(measured_ma, rel=0.15)


def test_naive_aro_3g_overestimates_short_keepalives_and_fleet_uses_calibrated() -> None:
    assert keepalive_current_ma(RADIO_3G_ARO, 20.0) > 80.0
    assert RADIO_MODELS["3g"] is RADIO_3G_HAVERINEN


def test_lte_beat_every_30_s_costs_12_6_j_and_0_42_w() -> None:
    radio = Radio(RADIO_LTE)
    beats = 0
    for k in range(120):
        radio.transfer(30.0 * k, 200, 200)
        beats += 1
    energy = radio.energy_j(HOUR)
    assert energy / HOUR == pytest.approx(0.42, rel=0.15)
    assert energy / beats == pytest.approx(12.6, rel=0.15)
    # exact: promotion + full tail + bytes
    per_beat = 0.26 * 1.21 + 11.576 * 1.06 + 200 * (RADIO_LTE.up_j_per_byte + RADIO_LTE.down_j_per_byte)
    assert energy == pytest.approx(beats * per_beat, rel=1e-9)


def test_promotion_delay_only_from_idle() -> None:
    radio = Radio(RADIO_LTE)
    assert radio.state(0.0) == "IDLE"
    assert radio.transfer(0.0, 100, 100) == pytest.approx(0.26)
    assert radio.state(0.1) == "PROMOTION"
    assert radio.transfer(0.1, 100) == pytest.approx(0.16)  # rides the promotion in progress
    assert radio.transfer(5.0, 100) == 0.0  # connected
    assert radio.state(5.05) == "CONNECTED"
    assert radio.state(6.0) == "DRX"
    assert radio.transfer(16.0, 100) == 0.0  # still in the tail: 5 + 11.576 > 16
    assert radio.tail_end() == pytest.approx(16.0 + 11.576)
    assert radio.state(16.0 + 11.577) == "IDLE"
    assert radio.transfer(30.0, 100) == pytest.approx(0.26)
    wifi = Radio(RADIO_WIFI)
    assert wifi.transfer(0.0, 10) == 0.0
    assert wifi.transfer(100.0, 10) == 0.0


def test_3g_fach_carries_small_packets_and_repromotes_large_ones() -> None:
    radio = Radio(RADIO_3G_ARO)
    assert radio.transfer(0.0, 1000) == pytest.approx(2.0)  # IDLE -> DCH
    assert radio.state(2.0 + 4.0 + 1.0) == "FACH"
    assert radio.transfer(7.0, 100, 100) == 0.0  # small: stays on FACH, timer restarts
    assert radio.state(7.0 + 9.9) == "FACH"
    assert radio.transfer(8.0, 5000) == pytest.approx(1.5)  # large: FACH -> DCH
    assert radio.state(9.6) == "DCH"
    pch = Radio(RADIO_3G_HAVERINEN)
    pch.transfer(0.0, 60)
    assert pch.state(100.0) == "PCH"
    assert pch.transfer(100.0, 60) == pytest.approx(0.5)


def test_energy_is_analytic_between_calls() -> None:
    radio = Radio(RADIO_LTE)
    radio.transfer(10.0)
    assert radio.energy_j(10.0) == 0.0
    assert radio.energy_j(10.26) == pytest.approx(0.26 * 1.21)
    assert radio.energy_j(15.26) == pytest.approx(0.26 * 1.21 + 5.0 * 1.06)
    full = 0.26 * 1.21 + 11.576 * 1.06
    assert radio.energy_j(100.0) == pytest.approx(full)
    assert radio.energy_j(1000.0) == pytest.approx(full)


def test_switch_retires_old_tail_and_promotes_new_radio() -> None:
    radio = Radio(RADIO_LTE)
    radio.transfer(0.0)
    lte_full = 0.26 * 1.21 + 11.576 * 1.06
    radio.switch(RADIO_WIFI, 3.0)
    assert radio.model is RADIO_WIFI
    assert radio.state(3.0) == "IDLE"
    assert radio.energy_j(3.0) == pytest.approx(0.26 * 1.21 + 2.74 * 1.06)
    assert radio.transfer(3.0, 1000) == 0.0  # Wi-Fi: no promotion
    wifi = 0.25 * 0.403 + 1000 * RADIO_WIFI.up_j_per_byte
    assert radio.energy_j(5.0) == pytest.approx(0.26 * 1.21 + 4.74 * 1.06 + wifi)
    assert radio.energy_j(50.0) == pytest.approx(lte_full + wifi)  # old tail ran out in full
    radio.switch(RADIO_LTE, 60.0)
    assert radio.transfer(60.0) == pytest.approx(0.26)  # back on LTE: promotion again
    radio.switch(RADIO_LTE, 61.0)  # horizontal handover keeps the connection
    assert radio.transfer(61.0) == 0.0
    assert radio.energy_j(200.0) == pytest.approx(lte_full + wifi + 0.26 * 1.21 + (0.74 + 11.576) * 1.06)


def test_off_stops_tails_and_refuses_transfers() -> None:
    radio = Radio(RADIO_LTE)
    radio.transfer(0.0)
    radio.off(5.0)
    at_off = 0.26 * 1.21 + 4.74 * 1.06
    assert radio.energy_j(5.0) == pytest.approx(at_off)
    assert radio.energy_j(500.0) == pytest.approx(at_off)
    assert not radio.is_on and radio.state(6.0) == "OFF"
    with pytest.raises(RuntimeError):
        radio.transfer(6.0)
    # Dated before the radio's last event (a live run's frames run ahead by the loop's lag): it
    # happens at that event, and spends nothing in the past.
    radio.switch(RADIO_LTE, 4.0)
    assert radio.is_on and radio.state(5.0) == "IDLE"
    assert radio.energy_j(4.0) == pytest.approx(at_off)
    radio.off(4.5)
    assert radio.energy_j(500.0) == pytest.approx(at_off)
    radio.switch(RADIO_LTE, 10.0)
    assert radio.transfer(10.0) == pytest.approx(0.26)


# -- battery ----------------------------------------------------------------------------------


def run_at(env: simpy.Environment, t: float, action: Any) -> None:
    def proc() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(t - env.now)
        action()

    env.process(proc())


def test_device_presets() -> None:
    assert IPHONE_15.capacity_wh == 12.98 and IPHONE_15.os == "ios"
    assert DEVICE_MODELS["iPhone 15 Pro Max"].capacity_wh == pytest.approx(4.422 * 12.98 / 3.349)
    assert GALAXY_S24.os == "android" and GALAXY_S24.capacity_wh == pytest.approx(4.0 * 12.98 / 3.349)
    assert DEVICE_MODELS["Galaxy S24 Ultra"].capacity_wh == pytest.approx(5.0 * 12.98 / 3.349)
    for m in DEVICE_MODELS.values():
        assert 0.50 <= m.screen_w <= 0.64 and 0.23 <= m.gps_w <= 0.45 and 5.0 <= m.baseline_ma <= 6.0


def test_battery_drains_exactly_with_screen_and_gps() -> None:
    env = simpy.Environment()
    battery = Battery(
        env, 10.0, 100.0, Radio(RADIO_WIFI), "android", baseline_w=0.02, screen_w=0.6, gps_w=0.3
    )
    run_at(env, 100.0, lambda: battery.set_screen(True, env.now))
    run_at(env, 500.0, lambda: battery.set_gps(True, env.now))
    run_at(env, 1100.0, lambda: battery.set_screen(False, env.now))
    run_at(env, 2500.0, lambda: battery.set_gps(False, env.now))
    env.run(until=700.0)
    assert battery.energy_j(700.0) == pytest.approx(0.02 * 700 + 0.6 * 600 + 0.3 * 200, rel=1e-12)
    assert battery.power_w() == pytest.approx(0.92)
    env.run(until=3000.0)
    expected_j = 0.02 * 3000 + 0.6 * 1000 + 0.3 * 2000
    assert battery.energy_j(3000.0) == pytest.approx(expected_j, rel=1e-12)
    assert battery.drained_pct(3000.0) == pytest.approx(100 * expected_j / 36000.0, rel=1e-12)
    assert battery.level(3000.0) == pytest.approx(100 - 100 * expected_j / 36000.0, rel=1e-12)
    assert not battery.saver(3000.0)


def test_battery_counts_radio_energy() -> None:
    env = simpy.Environment()
    radio = Radio(RADIO_LTE)
    battery = Battery(env, 10.0, 80.0, radio, "ios", baseline_w=0.0)
    radio.transfer(0.0)
    assert battery.energy_j(100.0) == pytest.approx(0.26 * 1.21 + 11.576 * 1.06)


@pytest.mark.parametrize(("os", "threshold"), [("android", ANDROID_SAVER_PCT), ("ios", IOS_SAVER_PCT)])
def test_saver_and_empty_fire_at_analytic_times(os: str, threshold: float) -> None:
    env = simpy.Environment()
    events: list[tuple[float, str]] = []
    radio = Radio(RADIO_LTE)
    battery = Battery(
        env, 1.0, threshold + 2.0, radio, os, lambda kind, _v: events.append((env.now, kind)),
        baseline_w=0.02, screen_w=0.6, gps_w=0.3,
    )
    capacity = 3600.0
    # screen on at 10 s, GPS on from 30 s to 50 s: the planner must re-plan at each change
    run_at(env, 10.0, lambda: battery.set_screen(True, env.now))
    run_at(env, 30.0, lambda: battery.set_gps(True, env.now))
    run_at(env, 50.0, lambda: battery.set_gps(False, env.now))
    spent_by_50 = 0.02 * 50 + 0.6 * 40 + 0.3 * 20
    saver_t = 50 + (0.02 * capacity - spent_by_50) / 0.62
    env.run(until=saver_t - 1)
    assert not battery.saver(env.now) and battery.level(env.now) > threshold
    env.run(until=HOUR * 10)
    empty_t = 50 + ((threshold + 2.0) / 100 * capacity - spent_by_50) / 0.62
    assert [kind for _, kind in events] == ["saver", "empty"]
    assert events[0][0] == pytest.approx(saver_t, abs=1e-6)
    assert events[1][0] == pytest.approx(empty_t, abs=1e-6)
    assert not battery.is_on and battery.off_at == pytest.approx(empty_t)
    assert battery.level(HOUR * 10) == 0.0
    assert not radio.is_on
    battery.set_screen(False, env.now)  # a dead phone ignores the switch
    assert battery.energy_j(HOUR * 10) == pytest.approx((threshold + 2.0) / 100 * capacity, abs=1e-3)


def test_thresholds_with_radio_traffic_fire_within_one_planning_step() -> None:
    env = simpy.Environment()
    events: list[tuple[float, str, float]] = []
    radio = Radio(RADIO_LTE)
    battery = Battery(
        env, 2.0, 16.0, radio, "android",
        lambda kind, _v: events.append((env.now, kind, battery.drained_pct(env.now))),
        baseline_w=0.02, max_step_s=900.0,
    )

    def heartbeat() -> Generator[simpy.Event, Any, None]:
        while battery.is_on:
            radio.transfer(env.now, 100, 100)
            yield env.timeout(30.0)

    env.process(heartbeat())
    env.run(until=HOUR * 10)
    # ~0.44 W: 1 % of 7200 J lasts ~164 s, 16 % ~2620 s; a step overshoots by < 900 s x the error
    per_step_pct = 100 * 0.45 * 900.0 / 7200.0
    (_, saver_kind, saver_drained), (empty_t, empty_kind, empty_drained) = events
    assert (saver_kind, empty_kind) == ("saver", "empty")
    assert 1.0 <= saver_drained <= 1.0 + per_step_pct
    assert 16.0 <= empty_drained <= 16.0 + per_step_pct
    average_w = 0.02 + 12.6 / 30.0
    assert empty_t == pytest.approx(0.16 * 7200 / average_w, abs=900.0)
    assert battery.energy_j(HOUR * 10) == pytest.approx(battery.energy_j(empty_t))


def test_battery_planner_costs_a_few_events_per_hour() -> None:
    class CountingEnvironment(simpy.Environment):
        scheduled = 0

        def schedule(self, event: simpy.Event, priority: Any = 1, delay: float = 0) -> None:
            type(self).scheduled += 1
            super().schedule(event, priority, delay)

    env = CountingEnvironment()
    radio = Radio(RADIO_LTE)
    battery = Battery.for_device(env, GALAXY_S24, 100.0, radio)
    for k in range(120):  # radio traffic does not wake the planner
        radio.transfer(30.0 * k)
    run_at(env, 1000.0, lambda: battery.set_screen(True, env.now))
    run_at(env, 1300.0, lambda: battery.set_screen(False, env.now))
    before = CountingEnvironment.scheduled
    env.run(until=HOUR * 4)
    # minus the run's `until` event and the two run_at processes' timeouts and exits
    planner_events = CountingEnvironment.scheduled - before - 5
    # a wake every 15 min, two re-plans (interrupt + timeout), one timeout pending past the end
    assert planner_events <= 4 * 4 + 2 * 2 + 1
    assert battery.level(HOUR * 4) < 100.0
