"""The scripts behind `make`: what they print and which tests they leave out."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dry_run(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TOPVIEW_", "PORT"))}
    done = subprocess.run(
        ["bash", "scripts/demo.sh", "--dry-run"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_the_demo_prints_commands_for_the_ports_it_was_given() -> None:
    output = dry_run(PORT="9123", FAKE_TOPVIEW_PORT="9876")
    assert "http://127.0.0.1:9123/admin/" in output
    assert "--url http://127.0.0.1:9123/topview/notice/" in output
    assert "TOPVIEW_API_BASE_URL=http://127.0.0.1:9876 " in output
    assert not re.search(r":(8000|8765)\b", output), output
    # Every printed manage.py command names where it sends.
    commands = [line for line in output.splitlines() if "manage.py" in line]
    assert len(commands) == 2
    assert all("127.0.0.1:9123" in line for line in commands)


def test_the_demo_defaults_to_8000_and_8765() -> None:
    output = dry_run()
    assert "http://127.0.0.1:8000/admin/" in output and "http://127.0.0.1:8765" in output


def test_the_dry_run_installs_and_starts_nothing() -> None:
    script = (ROOT / "scripts" / "demo.sh").read_text()
    dry = script.index('if [ "${1:-}" = "--dry-run" ]')
    assert dry < script.index("\nscripts/bootstrap.sh demo") < script.index("runserver")


def test_make_test_leaves_the_load_test_to_its_own_target() -> None:
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert test_sh.count('-m "not load"') == 2  # the SQLite and the PostgreSQL run
    assert "test-load:" in (ROOT / "Makefile").read_text()
    load_module = (ROOT / "tests" / "test_load.py").read_text()
    assert "pytest.mark.load" in load_module
    # CI still runs it: nox's full session selects no marker away.
    noxfile = (ROOT / "noxfile.py").read_text()
    full = noxfile[noxfile.index("def full(") : noxfile.index("def lint(")]
    assert "not load" not in full and full.count('"-m"') == 1  # python -m pytest
