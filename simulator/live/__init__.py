"""The live view of a run (``beacon-fleet run --live``): a page on loopback that shows the fleet as it
runs, fed by snapshots of the running fleet.

- :mod:`simulator.live.feed`: :class:`LiveFeed`, an ``on_progress`` callback that folds the ledger
  and encodes a JSON snapshot at most twice a second;
- :mod:`simulator.live.server`: :class:`LiveServer`, the page and the latest snapshot over HTTP on
  127.0.0.1, from a daemon thread;
- ``page.html``: the page itself (inline CSS and JavaScript, nothing fetched but the snapshot).
"""

from simulator.live.feed import LiveFeed, fan_out
from simulator.live.server import LiveError, LiveServer, hold

__all__ = ["LiveError", "LiveFeed", "LiveServer", "fan_out", "hold"]
