"""Field values as the raw statements send them: what ``Field.get_db_prep_save`` gives."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

_TEXT = frozenset({"CharField", "TextField"})
_INTEGER = frozenset({"IntegerField", "PositiveIntegerField", "BigIntegerField"})


def db_value(field: models.Field[Any, Any], value: Any, connection: BaseDatabaseWrapper) -> Any:
    """``field.get_db_prep_save(value, connection)``, skipped where it returns the value
    itself: a string for a text column, an int for an integer one. The statements of the
    request path send about 30 values a notice, and the full call is most of their cost."""
    kind = field.get_internal_type()
    if (kind in _TEXT and isinstance(value, str)) or (kind in _INTEGER and type(value) is int):
        return value
    return field.get_db_prep_save(value, connection)
