"""The production shape's extra processes: PgBouncer (transaction pooling) in front of the
machine's PostgreSQL, and nginx in front of several web nodes. Each gets a folder of its
own for its configuration and files, removed with it."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

from tests.support.processes import Service

RABBITMQ_URL = os.environ.get("TOPVIEW_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _scratch(name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"topview-{name}-"))
    folder.chmod(0o755)  # PgBouncer and nginx's workers may run as another user
    return folder


def pgbouncer(port: int, folder: Path | None = None) -> Service:
    """PgBouncer on ``port``, transaction pooling, to 127.0.0.1:5432 as postgres. Started
    again in the same ``folder`` after a kill, it comes back as it was."""
    folder = folder or _scratch("pgbouncer")
    (folder / "userlist.txt").write_text('"postgres" ""\n')
    config = folder / "pgbouncer.ini"
    config.write_text(
        "[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'userlist.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 10\nmax_client_conn = 500\n"
        "server_login_retry = 1\nlog_connections = 0\nlog_disconnections = 0\n"
    )
    user = ["-u", "postgres"] if os.geteuid() == 0 else []
    service = Service(
        "pgbouncer", [shutil.which("pgbouncer") or "pgbouncer", *user, str(config)], {}
    )
    service.scratch = str(folder)
    return service.start(lambda: answers(port), timeout=20)


def nginx(port: int, upstreams: list[int]) -> Service:
    """nginx on ``port`` in front of the web nodes on ``upstreams``, as docs/deployment.md
    configures it: a POST that a dead node never answered goes to the next node."""
    folder = _scratch("nginx")
    servers = "".join(
        f"    server 127.0.0.1:{up} max_fails=1 fail_timeout=2s;\n" for up in upstreams
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"  access_log off;\n  client_body_temp_path {folder}/body;\n"
        f"  proxy_temp_path {folder}/proxy;\n  fastcgi_temp_path {folder}/fastcgi;\n"
        f"  uwsgi_temp_path {folder}/uwsgi;\n  scgi_temp_path {folder}/scgi;\n"
        f"  upstream web {{\n{servers}    keepalive 16;\n  }}\n"
        "  server {\n"
        f"    listen 127.0.0.1:{port};\n    client_max_body_size 4m;\n"
        "    location / {\n"
        "      proxy_pass http://web;\n      proxy_http_version 1.1;\n"
        '      proxy_set_header Connection "";\n      proxy_set_header Host $host;\n'
        "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "      proxy_next_upstream error timeout http_502 non_idempotent;\n"
        "      proxy_connect_timeout 2s;\n      proxy_read_timeout 30s;\n"
        "    }\n  }\n}\n"
    )
    argv = [
        shutil.which("nginx") or "/usr/sbin/nginx",
        "-p",
        str(folder),
        "-c",
        str(folder / "nginx.conf"),
        "-g",
        "daemon off;",
    ]
    service = Service("nginx", argv, {})
    service.scratch = str(folder)
    return service.start(lambda: answers(port), timeout=20)
