"""The benchmarks' counting receiver: what it counts is what committed, once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import transaction

from tests.support.recording import counting_receiver, fired, fired_at

pytestmark = [
    pytest.mark.redis,
    pytest.mark.usefixtures("redis_records"),
    pytest.mark.django_db(transaction=True),
]


def receive(uuid: str) -> None:
    counting_receiver(sender=None, notice=SimpleNamespace(uuid=uuid))


def test_a_transaction_s_notices_are_counted_once_each_after_its_commit() -> None:
    with transaction.atomic():
        for uuid in ("n-1", "n-2", "n-3"):
            receive(uuid)
        assert fired() == {}  # nothing until the commit
    assert fired() == {"n-1": 1, "n-2": 1, "n-3": 1}
    stamps = fired_at(["n-1", "n-2", "n-3", "n-never"])
    assert stamps[0] is not None and stamps[:3] == [stamps[0]] * 3
    assert stamps[3] is None


def test_what_rolled_back_is_not_counted() -> None:
    with transaction.atomic():
        receive("n-kept")
        try:
            with transaction.atomic():
                receive("n-undone")
                raise RuntimeError
        except RuntimeError:
            pass
        receive("n-after")
    with pytest.raises(RuntimeError), transaction.atomic():
        receive("n-lost")
        raise RuntimeError
    assert fired() == {"n-kept": 1, "n-after": 1}
