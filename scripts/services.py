"""Exit 0 when the named services (postgres, redis) accept connections on 127.0.0.1."""

from __future__ import annotations

import socket
import sys

PORTS = {"postgres": 5432, "redis": 6379, "rabbitmq": 5672}


def reachable(name: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", PORTS[name]), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(0 if all(reachable(name) for name in sys.argv[1:]) else 1)
