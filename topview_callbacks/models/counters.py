"""Counters on the tables every delivery writes (notices, tasks)."""

from __future__ import annotations

from typing import Any

from django.core.validators import MinValueValidator
from django.db import models


def counter(verbose_name: Any, **kwargs: Any) -> models.IntegerField[int, int]:
    """A count from 0 that only this app's own statements increment (attempts, polls).

    An ``IntegerField`` whose forms refuse a negative value, where ``PositiveIntegerField``
    would add a ``CHECK (column >= 0)`` to the table: PostgreSQL reads and prepares every
    CHECK expression anew for each INSERT, about 15,000 instructions a row (measured in
    docs/benchmark.md), to guard a value no statement of ours can make negative.
    """
    return models.IntegerField(verbose_name, default=0, validators=[MinValueValidator(0)], **kwargs)
