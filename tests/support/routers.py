"""A database router of a project that keeps topview_callbacks' tables apart.

Writes go to the "notices" alias; reads go to a replica that has not caught up, stood for
by "default" (it has the schema and none of the rows), except for an instance loaded from
a database (Django's ``instance`` hint), read again where it came from. The pipeline must
write and read its rows through the alias it writes notices to, whatever the reads' route.
"""

from __future__ import annotations

from typing import Any

NOTICES = "notices"
LAGGING_REPLICA = "default"


def _ours(model: Any) -> bool:
    return model is not None and model._meta.app_label == "topview_callbacks"


class NoticesDatabaseRouter:
    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return NOTICES if _ours(model) else None

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        if not _ours(model):
            return None
        instance = hints.get("instance")
        if instance is not None and instance._state.db:
            return str(instance._state.db)
        return LAGGING_REPLICA
