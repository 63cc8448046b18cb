"""The bounds every connection of the websocket server lives within (issue 6).

One frozen value, given to ``ParleyServer``; tests shrink the times to keep runs short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_RESUME_GRACE_S: Final = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    open_timeout_s: float = 10.0
    """The HTTP upgrade must be complete within this (a slow, partial request is cut off)."""
    close_timeout_s: float = 10.0
    """A closing handshake the client does not answer within this ends with the TCP connection cut."""
    hello_timeout_s: float = 10.0
    """``Hello`` must arrive within this after the upgrade, as one whole frame."""
    send_timeout_s: float = 15.0
    """A client that takes none of our data for this long is cut off (its session is kept to resume)."""
    messages_per_s: float = 100.0
    """Sustained rate of incoming frames (microphone audio is 30-50 frames a second)."""
    burst: int = 200
    """Frames accepted at once above the sustained rate."""
    flood_drops: int = 1000
    """Frames dropped over the limit, net of ``flood_drops / flood_window_s`` per second, that close the link."""
    flood_window_s: float = 10.0
    warn_interval_s: float = 1.0
    """At most one ``rate_limited`` Error per this interval: a flood is not answered by a flood."""
    resume_grace_s: float = DEFAULT_RESUME_GRACE_S
    """How long the session of a dropped link waits to be resumed."""
    max_detached: int = 64
    """Sessions waiting to be resumed at most; the oldest is closed when more drop."""
