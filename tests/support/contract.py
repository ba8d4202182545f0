"""The contract's example notice (tests/fixtures/contract_notice.json), posted to this
project through Django's test client. Its UID and acknowledgement: readme_site.py."""

from __future__ import annotations

from typing import Any

from django.test import Client

from tests.support.readme_site import CONTRACT_UID, FIXTURES


def deliver_contract_example(url: str) -> Any:
    """POST the example, with its UID, to ``url``; the response."""
    return Client().post(
        url,
        data=(FIXTURES / "contract_notice.json").read_bytes(),
        content_type="application/json",
        headers={"Topview-Uid": CONTRACT_UID},
    )
