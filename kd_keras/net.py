"""Whether a download host answers, checked before a download so that an offline machine
fails in seconds rather than after minutes of retries."""

from __future__ import annotations

import socket
from typing import Sequence


def host_reachable(hosts: Sequence[str], timeout: float = 5.0) -> bool:
    """Whether a TCP connection to port 443 of any host opens within the timeout."""
    for host in hosts:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                return True
        except OSError:
            continue
    return False
