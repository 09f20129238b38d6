"""Seeded randomness: one independent generator per (actor, concern), derived from the run seed.

Device ``k``'s mobility draws come from ``SeedSequence(seed, spawn_key=(DEVICE, k, MOBILITY))``
whatever the fleet size or shard, so device ``k`` behaves the same in a fleet of 10 and of 10,000,
and adding a draw to one concern (say, the network model) never shifts another (the user's panic
presses). Nothing in the fleet may use the global ``random`` or ``numpy.random`` state.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Actor(IntEnum):
    DEVICE = 0
    OPERATOR = 1
    BACKEND = 2


class Concern(IntEnum):
    MOBILITY = 0
    GPS = 1
    NETWORK = 2
    LINK = 3
    LIFECYCLE = 4
    USER = 5
    BATTERY = 6
    CLIENT = 7  # backoff jitter
    HARDWARE = 8  # device model, OS, network type drawn at build time
    OPERATOR = 9
    SERVICE = 10  # the modelled backend's service times


def generator(seed: int, actor: Actor, index: int, concern: Concern) -> np.random.Generator:
    """The generator for one actor's one concern."""
    sequence = np.random.SeedSequence(seed, spawn_key=(int(actor), index, int(concern)))
    return np.random.Generator(np.random.PCG64(sequence))
