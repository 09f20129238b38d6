"""The phone model: pure SimPy processes and calculators, no I/O, randomness passed in."""
