"""A site whose UID is misconfigured receives notices: every way of watching says so.

Topview calls the right NOTICE_URL, path token included, with a UID the settings do not
name: the token tells it apart from a stranger's guess, so it is a misconfiguration
(``wrong_uid_known_sender``), critical in health.
"""

from __future__ import annotations

import json
import logging
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from topview_callbacks.metrics import receivers
from topview_callbacks.testing import deliver_notice, mock_topview, notice_payload

pytestmark = pytest.mark.django_db(transaction=True)

CONFIGURED_UID = "uid-typed-wrong-SECRET1"  # what settings say
TOPVIEW_UID = "uid-topview-really-sends-SECRET2"  # what Topview sends
TOKEN = "path-token-SECRET3-0123456789"
SITE = {
    "UID": CONFIGURED_UID,
    "API_KEY": "sk-key",
    "API_BASE_URL": "https://api.topview.test",
    "NOTICE_TOKENS": [TOKEN],
    "NOTICE_URL": f"https://example.com/topview/notice/{TOKEN}/",
    "METRICS": True,
}
REASON = "wrong_uid_known_sender"


def rejected_total() -> float:
    labels = {"reason": REASON, "status": "403"}
    return REGISTRY.get_sample_value("topview_notices_rejected_total", labels) or 0.0


@override_settings(TOPVIEW_CALLBACKS=SITE)
def test_a_misconfigured_uid_is_seen_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    receivers.connect()
    cache.clear()
    before = rejected_total()
    try:
        with caplog.at_level(logging.WARNING, logger="topview_callbacks"):
            for n in range(3):
                payload = notice_payload("M2V_EXPORT", uuid=f"lost-{n}")
                path = f"/topview/notice/{TOKEN}/"
                assert deliver_notice(payload, uid=TOPVIEW_UID, path=path).status_code == 403
        # The metric counts them.
        assert rejected_total() - before == 3
    finally:
        receivers.disconnect()

    # The log line names the reason, the address and the notice, and no secret.
    lines = [r.getMessage() for r in caplog.records if r.name == "topview_callbacks.rejections"]
    assert lines[0] == (
        f"Topview notice rejected: {REASON} (403) from 127.0.0.1, account unknown, "
        "uuid unreadable: Missing or unknown Topview-Uid header."
    )
    assert not any("SECRET" in line for line in lines)

    # The health command exits 2 and names the cause.
    out = StringIO()
    with pytest.raises(SystemExit) as exit:
        call_command("topview_health", "--json", stdout=out)
    assert exit.value.code == 2
    [finding] = [c for c in json.loads(out.getvalue())["checks"] if c["level"] == "critical"]
    assert finding["name"] == "rejected_deliveries" and f"{REASON}: 3" in finding["summary"]
    assert "TOPVIEW_CALLBACKS['UID']" in finding["summary"] and "SECRET" not in out.getvalue()

    # The dashboard shows the rejections.
    client = Client()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    with mock_topview():
        html = client.get("/admin/topview_callbacks/notice/dashboard/").content.decode()
    assert f'<tr class="reason-{REASON}"><td>{REASON}</td><td>403</td><td>3</td>' in html
    assert "SECRET" not in html
