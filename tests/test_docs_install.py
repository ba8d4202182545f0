"""The install and settings snippets of README.md, docs/installation.md and
docs/settings.md, run as written.

The settings blocks must work in every process that imports settings (no variable set:
`manage.py check`, tests, CI); the production block must name a missing variable; the
logging block must keep the path token out of gunicorn's access log.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from tests.support.readme_site import README, ROOT, install_line, snippet

INSTALLATION = ROOT / "docs" / "installation.md"
SETTINGS_PAGE = ROOT / "docs" / "settings.md"
EXTRA_ROW = re.compile(r"^\| `([a-z-]+)` \|", re.MULTILINE)
VARIABLES = ("TOPVIEW_UID", "TOPVIEW_API_KEY", "TOPVIEW_NOTICE_TOKEN", "TOPVIEW_NOTICE_URL")


def extras_table(page: Path) -> list[str]:
    text = page.read_text()
    table = text[text.index("| extra | for |") :].split("\n\n")[0]
    return EXTRA_ROW.findall(table)


def test_readme_and_installation_list_the_extras_of_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = sorted(pyproject["project"]["optional-dependencies"])
    assert sorted(extras_table(README)) == extras
    assert extras_table(INSTALLATION) == extras_table(README)


def test_the_install_line_works_before_the_first_release() -> None:
    # Nothing is on PyPI yet: the line installs from a clone (scripts/check_readme_site.py
    # runs it in a new virtualenv). Releasing puts the PyPI line back (docs/releasing.md).
    assert install_line(README).startswith("pip install ./topview-callbacks ")
    assert install_line(INSTALLATION) == install_line(README)
    assert "git clone" in README.read_text().split("pip install ./topview-callbacks")[0]
    assert "flip" in (ROOT / "docs" / "releasing.md").read_text().lower()


def run_settings(code: str, page: Path, env: dict[str, str]) -> dict[str, Any]:
    """Execute a settings snippet the way Django imports settings, with only ``env``."""
    namespace: dict[str, Any] = {"INSTALLED_APPS": ["django.contrib.admin"], "DEBUG": False}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({"PATH": saved.get("PATH", ""), **env})
    try:
        exec(compile(code, str(page), "exec"), namespace)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return namespace


@pytest.mark.parametrize(
    ("page", "first_line"),
    [
        (README, "# settings.py (at the end)"),
        (INSTALLATION, "# settings.py (at the end)"),
        (SETTINGS_PAGE, "import os"),
    ],
    ids=["README", "installation", "settings"],
)
def test_a_settings_snippet_works_with_no_variable_set(page: Path, first_line: str) -> None:
    config = run_settings(snippet(page, first_line), page, {})["TOPVIEW_CALLBACKS"]
    assert config["UID"].startswith("insecure-")  # W008 with check --deploy
    (token,) = config["NOTICE_TOKENS"]
    assert len(token) >= 16 and config["NOTICE_URL"].endswith(f"/topview/notice/{token}/")


@pytest.mark.parametrize("page", [README, INSTALLATION], ids=["README", "installation"])
def test_a_settings_snippet_takes_production_values_from_the_environment(page: Path) -> None:
    env = {
        "TOPVIEW_UID": "real-uid",
        "TOPVIEW_API_KEY": "sk-real",
        "TOPVIEW_NOTICE_TOKEN": "a-real-token-0123456789",
        "TOPVIEW_NOTICE_URL": "https://site.example/topview/notice/a-real-token-0123456789/",
    }
    namespace = run_settings(snippet(page, "# settings.py (at the end)"), page, env)
    assert namespace["INSTALLED_APPS"][-1:] == ["topview_callbacks"]
    assert namespace["TOPVIEW_CALLBACKS"] == {
        "UID": "real-uid",
        "API_KEY": "sk-real",
        "NOTICE_TOKENS": ["a-real-token-0123456789"],
        "NOTICE_URL": "https://site.example/topview/notice/a-real-token-0123456789/",
    }


def test_the_production_block_names_each_missing_variable() -> None:
    code = snippet(INSTALLATION, "# config/settings/production.py")
    complete = {name: "set" for name in VARIABLES}
    run_settings(code, INSTALLATION, complete)
    for name in VARIABLES:
        with pytest.raises(ImproperlyConfigured, match=f"Set the environment variable {name} "):
            run_settings(code, INSTALLATION, {k: v for k, v in complete.items() if k != name})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


GUNICORN_SETTINGS = """\
from tests.settings import *  # noqa: F403

{snippet}
TOPVIEW_CALLBACKS = {{**TOPVIEW_CALLBACKS, "NOTICE_TOKENS": ["{token}"]}}
"""


def test_the_logging_block_keeps_the_token_out_of_gunicorns_access_log(tmp_path: Path) -> None:
    """gunicorn as installation.md says (--access-logfile -), with its LOGGING block."""
    token = "gunicorn-token-0123456789"
    guess = "a-guess-by-a-stranger-0123"
    code = snippet(INSTALLATION, "# settings.py (at the end): logging")
    (tmp_path / "logged_settings.py").write_text(
        GUNICORN_SETTINGS.format(snippet=code, token=token)
    )
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "logged_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    command = [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--access-logfile", "-"]
    server = subprocess.Popen(
        [*command, "--workers", "1", "django.core.wsgi:get_wsgi_application()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                # The first answer waits for a worker to import Django: slow on a busy machine.
                requests.get(f"{base}/topview/notice/{token}/", timeout=15)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        for path in (f"/topview/notice/{token}", f"/topview/notice/{guess}/"):
            requests.post(f"{base}{path}", data="{}", timeout=5)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    access_lines = [line for line in output.splitlines() if "/topview/notice/" in line]
    assert len(access_lines) >= 3, output
    assert token not in output and guess not in output, output
    assert sum("/topview/notice/<token>" in line for line in access_lines) >= 3, output
