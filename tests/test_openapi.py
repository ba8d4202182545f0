"""topview_callbacks/openapi.yaml: a valid OpenAPI 3.1 document that says what the view does.

CI also runs schemathesis against a live server with it (`nox -s contract`); these tests
keep its examples equal to the contract's, and check each kind of answer against it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from django.test import Client, override_settings
from openapi_spec_validator import validate

from topview_callbacks.biz_types import SPECS

FIXTURES = Path(__file__).parent / "fixtures"
UID = "NsDAaOPF4jLu"
TOKEN = "openapi-test-token-0123456789"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    text = resources.files("topview_callbacks").joinpath("openapi.yaml").read_text()
    return dict(yaml.safe_load(text))


def conforms(spec: dict[str, Any], schema_name: str, body: Any) -> None:
    schema = {**spec, "$ref": f"#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_it_is_a_valid_openapi_31_document(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    validate(spec)


def test_the_examples_are_the_contracts(spec: dict[str, Any]) -> None:
    notice = spec["components"]["requestBodies"]["Notice"]["content"]["application/json"]
    contract_notice = json.loads((FIXTURES / "contract_notice.json").read_text())
    assert notice["examples"]["contract"]["value"] == contract_notice
    ack = spec["components"]["responses"]["Acknowledgement"]["content"]["application/json"]
    assert ack["examples"]["contract"]["value"] == json.loads(
        (FIXTURES / "contract_ack.json").read_text()
    )
    for example in notice["examples"].values():
        conforms(spec, "Notice", example["value"])


def test_every_documented_biz_type_is_listed(spec: dict[str, Any]) -> None:
    listed = spec["components"]["schemas"]["Notice"]["properties"]["bizType"]["examples"]
    assert set(listed) == set(SPECS)


def test_each_route_documents_every_answer(spec: dict[str, Any]) -> None:
    for path in ("/notice/", "/notice/{token}/"):
        operations = spec["paths"][path]
        assert set(operations["post"]["responses"]) == {"200", "400", "403", "413", "500", "503"}
        assert set(operations["get"]["responses"]) == {"200", "403"}
        for method in ("put", "patch", "delete"):
            assert set(operations[method]["responses"]) == {"405"}


def post(path: str, body: bytes | str, uid: str | None = UID) -> Any:
    headers = {"Topview-Uid": uid} if uid else {}
    return Client().post(path, data=body, content_type="application/json", headers=headers)


@pytest.mark.django_db(transaction=True)
@override_settings(TOPVIEW_CALLBACKS={"UID": UID, "NOTICE_TOKENS": [TOKEN]})
def test_the_views_answers_match_the_document(spec: dict[str, Any]) -> None:
    url = f"/topview/notice/{TOKEN}/"
    notice = (FIXTURES / "contract_notice.json").read_text()
    answers = {
        "Acknowledgement": post(url, notice),
        "ProbeAnswer": Client().get(url),
        "Error 400": post(url, "{}"),
        "Error 403 uid": post(url, notice, uid="someone-else"),
        "Error 403 token": post("/topview/notice/not-the-token-0000000/", notice),
        "Error 405": Client().put(url, data=notice, content_type="application/json"),
    }
    with override_settings(TOPVIEW_CALLBACKS={"UID": UID, "MAX_BODY_SIZE": 10}):
        answers["Error 413"] = post("/topview/notice/", notice)
    for name, response in answers.items():
        status = 200 if name in ("Acknowledgement", "ProbeAnswer") else int(name.split()[1])
        assert response.status_code == status, name
        assert response["Content-Type"] == "application/json", name
        conforms(spec, name.split()[0], response.json())
        assert response.json()["code"] == str(status)
    assert "POST" in answers["Error 405"]["Allow"]
