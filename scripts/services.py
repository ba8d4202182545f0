"""Exit 0 when the named services (postgres, redis) accept connections on 127.0.0.1
(PostgreSQL: at PGHOST and PGPORT when set, as tests/settings.py connects)."""

from __future__ import annotations

import os
import socket
import sys

PORTS = {"postgres": 5432, "redis": 6379, "rabbitmq": 5672}


def address(name: str) -> tuple[str, int]:
    if name == "postgres":
        return os.environ.get("PGHOST", "127.0.0.1"), int(os.environ.get("PGPORT", "5432"))
    return "127.0.0.1", PORTS[name]


def reachable(name: str) -> bool:
    try:
        with socket.create_connection(address(name), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(0 if all(reachable(name) for name in sys.argv[1:]) else 1)
