"""A new ``startproject`` site set up by pasting the README's example, verbatim.

Used by tests/test_host_project.py (with this environment's Django) and by
scripts/check_readme_site.py (in a new virtualenv, after the README's install line).
Every snippet is taken from README.md as it is, never retyped here: a README change that
breaks a new user's first hour breaks these.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FIXTURES = ROOT / "tests" / "fixtures"
CONTRACT_UID = "NsDAaOPF4jLu"  # the UID of the contract's example

# A ```lang block: its language and its text.
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)

# The apps.py the README's receivers comment asks for ("import it from ready()").
APP_CONFIG = """\
from django.apps import AppConfig


class YourAppConfig(AppConfig):
    name = "yourapp"

    def ready(self):
        from yourapp import receivers  # noqa: F401  (connects them)
"""

DELIVER = """\
import sys
import django
from django.test.utils import setup_test_environment

django.setup()
setup_test_environment()  # lets the test client's host through ALLOWED_HOSTS
from django.test import Client

response = Client().post(
    sys.argv[2], data=open(sys.argv[1], "rb").read(), content_type="application/json",
    headers={"Topview-Uid": sys.argv[3]},
)
print(response.status_code)
sys.stdout.flush()
sys.stdout.buffer.write(response.content)
"""

STATE = """\
import django
django.setup()
from topview_callbacks.models import Notice
print(",".join(sorted(Notice.objects.values_list("state", flat=True))))
"""


def blocks(page: Path, language: str) -> list[str]:
    return [text for lang, text in BLOCK.findall(page.read_text()) if lang == language]


def snippet(page: Path, first_line: str) -> str:
    """The ```python block of ``page`` whose first line is ``first_line``."""
    found = [text for text in blocks(page, "python") if text.splitlines()[0] == first_line]
    assert len(found) == 1, f"{page.name}: {len(found)} blocks start with {first_line!r}"
    return found[0]


def install_line(page: Path = README) -> str:
    """The first ``pip install`` line of the page's shell blocks, comment included."""
    for text in blocks(page, "sh"):
        for line in text.splitlines():
            if line.startswith("pip install "):
                return line
    raise AssertionError(f"{page.name} has no pip install line")


def clean_env(python: Path, **extra: str) -> dict[str, str]:
    """The environment of a new user's shell: no TOPVIEW_* or Django variable of ours."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TOPVIEW_", "DJANGO_", "HOSTPROJECT_")) and key != "PYTHONPATH"
    }
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def run(python: Path, *args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def build_site(python: Path, work: Path) -> Path:
    """``startproject mysite`` and ``startapp yourapp`` in ``work``, README pasted in."""
    env = clean_env(python)
    run(python, "-m", "django", "startproject", "mysite", cwd=work, env=env)
    site = work / "mysite"
    run(python, "manage.py", "startapp", "yourapp", cwd=site, env=env)
    settings, urls = site / "mysite" / "settings.py", site / "mysite" / "urls.py"
    with settings.open("a") as file:
        file.write("\n" + snippet(README, "# settings.py (at the end)"))
        file.write('\nINSTALLED_APPS += ["yourapp.apps.YourAppConfig"]\n')
    with urls.open("a") as file:
        file.write("\n" + snippet(README, "# urls.py (at the end)"))
    (site / "yourapp" / "apps.py").write_text(APP_CONFIG)
    (site / "yourapp" / "receivers.py").write_text(
        snippet(README, "# yourapp/receivers.py (import it from YourAppConfig.ready())")
    )
    (site / "yourapp" / "voices.py").write_text(
        snippet(README, "# yourapp/voices.py: submitting a task, from your own view or job")
    )
    (site / "deliver.py").write_text(DELIVER)
    (site / "states.py").write_text(STATE)
    return site


def notice_url(python: Path, site: Path, env: dict[str, str]) -> str:
    """The site's NOTICE_URL, as its settings make it in ``env``."""
    code = "from django.conf import settings; print(settings.TOPVIEW_CALLBACKS['NOTICE_URL'])"
    output = run(python, "manage.py", "shell", "-c", code, cwd=site, env=env)
    return output.splitlines()[-1]  # after the shell's note on what it imported


def site_env(python: Path, **extra: str) -> dict[str, str]:
    return clean_env(python, DJANGO_SETTINGS_MODULE="mysite.settings", **extra)


def deliver_contract_example(
    python: Path, site: Path, path: str, env: dict[str, str]
) -> tuple[str, bytes]:
    """POST the contract's example notice to ``path``: (status, body)."""
    done = subprocess.run(
        [str(python), "deliver.py", str(FIXTURES / "contract_notice.json"), path, CONTRACT_UID],
        cwd=site,
        env=env,
        capture_output=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(done.stderr.decode())
    status, _, body = done.stdout.partition(b"\n")
    return status.decode(), body


def contract_ack() -> bytes:
    """The contract's acknowledgement, as the endpoint writes it (compact, same key order)."""
    ack = json.loads((FIXTURES / "contract_ack.json").read_text())
    return json.dumps(ack, separators=(",", ":")).encode()
