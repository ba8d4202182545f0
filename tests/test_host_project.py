"""The app inside a host project: LoginRequiredMiddleware, and the host's API schemas.

A notice must reach the endpoint on a site where every view needs a login, on every
Django in the matrix, and the endpoint must stay out of the API schema of a host that
uses DRF and drf-spectacular, secret-token route included. tests/hostproject/ is that
host project.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.test import Client, override_settings
from django.urls import include, path

from tests.support import readme_site
from tests.support.contract import deliver_contract_example
from tests.support.readme_site import CONTRACT_UID, contract_ack

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "host-project-token-0123456789"
LOGIN_REQUIRED = [
    *settings.MIDDLEWARE,
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
]


@pytest.mark.django_db
@override_settings(MIDDLEWARE=LOGIN_REQUIRED, TOPVIEW_CALLBACKS={"UID": CONTRACT_UID})
def test_a_site_with_login_required_middleware_receives_the_contract_example() -> None:
    response = deliver_contract_example("/topview/notice/")
    assert response.status_code == 200
    assert response.content == contract_ack()


@pytest.mark.django_db
@override_settings(
    MIDDLEWARE=LOGIN_REQUIRED,
    TOPVIEW_CALLBACKS={"UID": CONTRACT_UID, "NOTICE_TOKENS": [TOKEN]},
)
def test_the_token_route_is_exempt_too() -> None:
    response = deliver_contract_example(f"/topview/notice/{TOKEN}/")
    assert response.status_code == 200
    assert response.content == contract_ack()


@override_settings(MIDDLEWARE=LOGIN_REQUIRED, ROOT_URLCONF="tests.hostproject.urls")
def test_the_middleware_is_really_on_in_that_set_up() -> None:
    response = Client().get("/private/")
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)


def test_drf_schema_generation_leaves_the_endpoint_out() -> None:
    from rest_framework.schemas.openapi import SchemaGenerator

    patterns = [path("topview/", include("topview_callbacks.urls"))]
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    assert schema is None or not schema.get("paths")


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.hostproject.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("tokens", ["0", "1"], ids=["without-tokens", "with-tokens"])
def test_the_host_projects_drf_spectacular_schema_validates_without_the_endpoint(
    tmp_path: Path, tokens: str
) -> None:
    schema_file = tmp_path / "schema.yaml"
    done = manage(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(schema_file),
        HOSTPROJECT_NOTICE_TOKENS=tokens,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr
    schema = yaml.safe_load(schema_file.read_text())
    assert sorted(schema["paths"]) == ["/api/greeting/", "/api/schema/"]
    text = schema_file.read_text()
    assert "notice" not in text
    assert TOKEN not in text


def test_a_new_startproject_site_following_the_readme_verbatim(tmp_path: Path) -> None:
    """The README's example pasted into a new site: `check` with no variable set says
    nothing, and the contract's example reaches NOTICE_URL with and without its slash.
    (scripts/check_readme_site.py does the same after the README's install line, in a new
    virtualenv, in CI's package session.)"""
    python = Path(sys.executable)
    site = readme_site.build_site(python, tmp_path)
    no_variables = readme_site.clean_env(python)
    output = readme_site.run(python, "manage.py", "check", cwd=site, env=no_variables)
    assert "System check identified no issues" in output, output
    readme_site.run(python, "manage.py", "migrate", "-v0", cwd=site, env=no_variables)
    notice_url = readme_site.notice_url(python, site, no_variables)
    path = urlsplit(notice_url).path
    assert path.startswith("/topview/notice/") and path.endswith("/"), notice_url

    # Topview's UID comes from the environment, as in production.
    env = readme_site.site_env(python, TOPVIEW_UID=CONTRACT_UID)
    for url in (path, path.rstrip("/")):
        status, body = readme_site.deliver_contract_example(python, site, url, env)
        assert (status, body) == ("200", contract_ack()), url
    states = readme_site.run(python, "states.py", cwd=site, env=env).strip()
    assert states == "processed"  # one notice (the same uuid twice); the receiver ran
