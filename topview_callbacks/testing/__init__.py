"""Helpers for testing code that receives Topview notices, in this project or yours.

    from topview_callbacks.testing import deliver_notice, notice_payload, send_outcome

    def test_my_receiver():
        send_outcome(notice_payload("VOICE_CLONE"))  # in memory: the signals only

    def test_my_endpoint(db):
        response = deliver_notice(notice_payload("VOICE_CLONE"))  # receivers run too
        assert response.status_code == 200

``payloads`` builds realistic notice bodies, ``outcome`` sends their signals in memory,
``delivery`` sends them to the endpoint, and ``fake/`` is a fake Topview (its API, its tasks
and their callbacks, with chaos on request). ``mock_topview()`` needs the ``testing`` extra
(``topview-callbacks[testing]``).

Nothing in the package imports this one except the commands that send test notices and the
fake server command.
"""

from __future__ import annotations

from topview_callbacks.testing.delivery import deliver_notice, notice_path, send_notice_over_http
from topview_callbacks.testing.fake.api import FakeTopview, mock_topview
from topview_callbacks.testing.fake.runner import Chaos, FakeTask, FakeTaskRunner, ScheduledCallback
from topview_callbacks.testing.fake.server import FakeTopviewServer
from topview_callbacks.testing.outcome import send_outcome
from topview_callbacks.testing.payloads import notice_payload, success_result

__all__ = [
    "Chaos",
    "FakeTask",
    "FakeTaskRunner",
    "FakeTopview",
    "FakeTopviewServer",
    "ScheduledCallback",
    "deliver_notice",
    "mock_topview",
    "notice_path",
    "notice_payload",
    "send_notice_over_http",
    "send_outcome",
    "success_result",
]
