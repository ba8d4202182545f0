"""Schemathesis against the live endpoint, driven by topview_callbacks/openapi.yaml.

Serves tests/hostproject (LoginRequiredMiddleware, drf-spectacular, a fresh SQLite file)
with gunicorn on 127.0.0.1, then runs schemathesis twice: once with the account's
`Topview-Uid` on every request, so the notice bodies themselves are fuzzed (200 and 400
answers), and once with generated headers (403 answers). Every answer must match the
document: no 5xx, each status documented, each body in its schema (the envelope). Exits
non-zero on any failure. Run by `nox -s contract`; extra arguments go to schemathesis.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "topview_callbacks" / "openapi.yaml"
UID = "NsDAaOPF4jLu"  # tests/hostproject/settings.py: the contract's example UID
MAX_EXAMPLES = os.environ.get("CONTRACT_MAX_EXAMPLES", "150")
# Everything schemathesis can check about answers, but:
# - positive_data_acceptance: the schema cannot say "a string holding a JSON object" as a
#   validation rule (contentSchema is an annotation), nor "no NUL characters", so a
#   schema-valid `result` string can rightly get 400;
# - ignored_auth, use_after_free, ensure_resource_availability, object_level_authorization:
#   about APIs with security schemes and resources to create and delete; this has neither.
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
    ]
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if server.poll() is not None:
            sys.exit("the server exited before answering")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    sys.exit(f"nothing answered at {url}")


def schemathesis(base_url: str, har: Path, *args: str) -> int:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        str(SPEC),
        "--url",
        base_url,
        "--checks",
        CHECKS,
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        os.environ.get("CONTRACT_SEED", "20261129"),
        "--workers",
        "1",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        *args,
    ]
    print("==", " ".join(command[3:]), flush=True)
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.hostproject.settings",
            "HOSTPROJECT_DATABASE": str(Path(tmp) / "host.sqlite3"),
        }
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        port = free_port()
        # The server's log (a line per refused delivery) goes to a file, shown on failure.
        server_log = Path(tmp) / "server.log"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--log-level",
                "warning",
                "tests.hostproject.wsgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=server_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            base_url = f"http://127.0.0.1:{port}/topview"
            wait_until_up(f"{base_url}/notice/", server)
            hars = [Path(tmp) / "with-uid.har", Path(tmp) / "any-uid.har"]
            failures = schemathesis(base_url, hars[0], "--header", f"Topview-Uid: {UID}")
            failures += schemathesis(base_url, hars[1])
        finally:
            server.terminate()
            server.wait(timeout=30)
            log = server_log.read_text(errors="replace")
        seen = statuses(hars)
    print("== answers seen:", ", ".join(f"{code}: {n}" for code, n in sorted(seen.items())))
    if failures:
        print(log[-5000:], file=sys.stderr)
        print("schemathesis found answers that break the contract (see above)", file=sys.stderr)
        return 1
    missing = {200, 400, 403, 405} - set(seen)
    if missing:
        print(f"the runs never got these answers: {sorted(missing)}", file=sys.stderr)
        return 1
    print("schemathesis: every answer matched topview_callbacks/openapi.yaml")
    return 0


def statuses(hars: list[Path]) -> dict[int, int]:
    """How many answers of each status the runs got (from schemathesis' HAR reports)."""
    counts: dict[int, int] = {}
    for har in hars:
        if not har.exists():
            continue
        for entry in json.loads(har.read_text())["log"]["entries"]:
            code = int(entry["response"]["status"])
            counts[code] = counts.get(code, 0) + 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
