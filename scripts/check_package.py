"""Install the built wheel the way a user would, into a new `startproject` site.

Run by `nox -s package` after the build: checks what the wheel and the sdist carry, makes a
clean virtualenv with the wheel, the newest Django and drf-spectacular, runs
`django-admin startproject`, adds the app as the README says (plus Django's
LoginRequiredMiddleware and a drf-spectacular schema), migrates, POSTs the contract's example
notice (200 and the contract's acknowledgement, byte for byte), validates the site's API
schema (`spectacular --validate --fail-on-warn`, without the notice routes), and runs
`check --deploy`, which must show exactly what it shows for the same site without the app.
Exits non-zero on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TOKEN = "package-check-token-0123456789"

# `check --deploy` on the site with the app set up as documented must say exactly what it
# says about the same fresh `startproject` site without the app: Django's findings about
# startproject's development defaults (DEBUG, SECRET_KEY, HSTS, ...; on Django 6.1 also
# mail.E001 and security.W020), and nothing of ours.

SETTINGS_ADDITIONS = f"""

# Added as docs/installation.md says, to a site that uses DRF and drf-spectacular (the
# endpoint must stay out of its schema).
INSTALLED_APPS += ["rest_framework", "drf_spectacular", "topview_callbacks"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
)
REST_FRAMEWORK = {{"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}}
SPECTACULAR_SETTINGS = {{"TITLE": "Site API", "VERSION": "1.0.0"}}
TOPVIEW_CALLBACKS = {{
    "UID": "NsDAaOPF4jLu",
    "API_KEY": "sk-package-check",
    "NOTICE_TOKENS": ["{TOKEN}"],
    "NOTICE_URL": "https://site.example/topview/notice/{TOKEN}/",
}}
DATABASES["default"]["CONN_MAX_AGE"] = 60
"""

URLS = """\
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("topview/", include("topview_callbacks.urls")),
]
"""

DELIVER = """\
import json, sys
import django
from django.test.utils import setup_test_environment

django.setup()
setup_test_environment()  # lets the test client's host through ALLOWED_HOSTS
from django.test import Client

body, token = sys.argv[1], sys.argv[2]
response = Client().post(
    f"/topview/notice/{token}/",
    data=open(body, "rb").read(),
    content_type="application/json",
    headers={"Topview-Uid": "NsDAaOPF4jLu"},
)
print(response.status_code)
sys.stdout.flush()
sys.stdout.buffer.write(response.content)
"""


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    print("==", " ".join(map(str, command)), flush=True)
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        print(output, file=sys.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, command))}")
    return output


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"package check failed: {message}")
    print("ok:", message)


def check_archives(dist: Path) -> Path:
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    check(len(wheels) == 1 and len(sdists) == 1, "one wheel and one sdist were built")
    wheel_names = zipfile.ZipFile(wheels[0]).namelist()
    check(
        any(re.search(r"\.dist-info/licenses/LICENSE$", name) for name in wheel_names),
        "the wheel carries LICENSE",
    )
    for shipped in ("openapi.yaml", "py.typed", "migrations/0001_initial.py"):
        check(f"topview_callbacks/{shipped}" in wheel_names, f"the wheel carries {shipped}")
    check(
        not any(name.startswith(("tests/", "example_project/")) for name in wheel_names),
        "the wheel carries neither tests/ nor example_project/",
    )
    with tarfile.open(sdists[0]) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        members = {name.removeprefix(top + "/") for name in sdist.getnames()}
    for needed in (
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "mkdocs.yml",
        "docs/index.md",
        "tests/conftest.py",
        "tests/hostproject/settings.py",
        "topview_callbacks/openapi.yaml",
    ):
        check(needed in members, f"the sdist carries {needed}")
    metadata = zipfile.ZipFile(wheels[0]).read(
        next(name for name in wheel_names if name.endswith(".dist-info/METADATA"))
    )
    check(b"License-Expression: MIT" in metadata, "the wheel's metadata says MIT")
    return wheels[0]


def make_venv(path: Path, python: str) -> Path:
    uv = shutil.which("uv")
    if uv:
        run(uv, "venv", "--quiet", "--python", python, path)
    else:
        run(sys.executable, "-m", "venv", path)
    return path / "bin" / "python"


def install(venv_python: Path, *requirements: str | Path) -> None:
    uv = shutil.which("uv")
    if uv:
        run(uv, "pip", "install", "--quiet", "--python", venv_python, *requirements)
    else:
        run(venv_python, "-m", "pip", "install", "--quiet", *requirements)


def deploy_check_ids(python: Path, site: Path, env: dict[str, str]) -> set[str]:
    """The ids `check --deploy` reports (it exits 1 when one of them is an error)."""
    done = subprocess.run(
        [python, "manage.py", "check", "--deploy"],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    print(textwrap.indent(done.stdout + done.stderr, "   | "))
    return set(re.findall(r"\(([\w.]+\.[EW]\d+)\)", done.stdout + done.stderr))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dist", type=Path, required=True, help="folder with the sdist and wheel")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the new venv")
    parser.add_argument("--django", default="Django", help="requirement for Django")
    options = parser.parse_args()

    wheel = check_archives(options.dist)
    with tempfile.TemporaryDirectory(prefix="topview-package-") as tmp:
        work = Path(tmp)
        python = make_venv(work / "venv", options.python)
        install(python, wheel, options.django, "drf-spectacular")
        print(run(python, "-c", "import django; print('Django', django.get_version())"))
        bin_dir = python.parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("PYTHONPATH", None)
        run(bin_dir / "django-admin", "startproject", "mysite", work / "mysite", env=env)
        site = work / "mysite"
        env["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
        baseline = deploy_check_ids(python, site, env)  # startproject's own, before the app
        with (site / "mysite" / "settings.py").open("a") as settings:
            settings.write(SETTINGS_ADDITIONS)
        (site / "mysite" / "urls.py").write_text(URLS)

        run(python, "manage.py", "migrate", "-v0", cwd=site, env=env)
        output = run(
            python, "manage.py", "makemigrations", "--check", "--dry-run", cwd=site, env=env
        )
        check("No changes detected" in output, "the shipped migrations match the models")

        deliver = site / "deliver.py"  # beside manage.py, so mysite is importable
        deliver.write_text(DELIVER)
        output = run(python, deliver, FIXTURES / "contract_notice.json", TOKEN, cwd=site, env=env)
        status, _, body = output.partition("\n")
        expected = json.dumps(
            json.loads((FIXTURES / "contract_ack.json").read_text()), separators=(",", ":")
        )
        check(status == "200", f"the contract's example notice got 200 (got {status})")
        check(body == expected, f"the answer is the contract's acknowledgement: {body}")

        schema = work / "schema.yaml"
        run(
            python,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            schema,
            cwd=site,
            env=env,
        )
        text = schema.read_text()
        check(
            "notice" not in text and TOKEN not in text, "the site's API schema has no notice route"
        )

        found = deploy_check_ids(python, site, env)
        check(
            found == baseline,
            f"check --deploy shows what it shows without the app: {sorted(found)}",
        )
        # As in production, where the app's own deployment checks (W001, W004, W030) apply:
        with (site / "mysite" / "settings.py").open("a") as settings:
            settings.write('\nDEBUG = False\nALLOWED_HOSTS = ["site.example"]\n')
        ours = {found for found in deploy_check_ids(python, site, env) if "topview" in found}
        check(not ours, f"with DEBUG off, check --deploy has nothing to say about the app: {ours}")
    print("the wheel installs and works in a new startproject site")
    return 0


if __name__ == "__main__":
    sys.exit(main())
