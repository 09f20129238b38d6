"""The person holding the phone: when they press panic, what they type, whether they cancel.

The panic schedule is drawn up front from its own generator (a Poisson process at
``panic_rate_per_h``), so a phone's presses are the same whatever the backend or the other phones
do; a press while an alert is still open does nothing (the app already shows it). Chat lines and
cancels during an alert come from a second generator, so how long an alert lasts never shifts the
panic schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faker import Faker


@dataclass(frozen=True)
class UserConfig:
    """Behaviour of the person in danger. Rates are per phone."""

    panic_rate_per_h: float = 0.1  # ASSUME: scenario-driven; profiles set it
    chat_mean_s: float = 90.0  # ASSUME: a line every ~1.5 min while the alert is open
    chat_max: int = 8
    cancel_probability: float = 0.15  # ASSUME: false alarms the user cancels
    cancel_after_mean_s: float = 60.0


def panic_times(config: UserConfig, rng: np.random.Generator, horizon_s: float) -> list[float]:
    """Press times in [0, horizon_s), a Poisson process (bounded count)."""
    if config.panic_rate_per_h <= 0:
        return []
    times: list[float] = []
    t = 0.0
    mean = 3600.0 / config.panic_rate_per_h
    for _ in range(100_000):
        t += float(rng.exponential(mean))
        if t >= horizon_s:
            break
        times.append(t)
    return times


class Chatter:
    """Chat lines and cancel decisions for one phone (faker text, seeded)."""

    def __init__(self, config: UserConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self._faker_seed = int(rng.integers(2**31))
        self._faker: Faker | None = None  # built on first use: most phones never chat

    def next_line_in(self) -> float:
        return float(self.rng.exponential(self.config.chat_mean_s))

    def line(self) -> str:
        if self._faker is None:
            self._faker = Faker()
            self._faker.seed_instance(self._faker_seed)
        return str(self._faker.sentence(nb_words=int(self.rng.integers(3, 12))))

    def cancel_in(self) -> float | None:
        """Seconds until the user cancels this alert, or None if they will not."""
        if self.rng.random() >= self.config.cancel_probability:
            return None
        return float(self.rng.exponential(self.config.cancel_after_mean_s))
