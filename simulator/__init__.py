"""Beacon Fleet: virtual phones and operators that check the Beacon system's reliability claims."""

__version__ = "0.1.0"
