"""PostgreSQL: the function the inline path stores and records a notice with
(topview_callbacks/processing/functions.py). Other databases run its statements one by one.

Every later ``migrate`` replaces it when the code builds another (``functions.ensure`` on
``post_migrate``); every call checks the function's version.
"""

from typing import Any

from django.db import migrations


def install(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        from topview_callbacks.processing import functions

        functions.install(schema_editor.connection)


def uninstall(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        from topview_callbacks.processing import functions

        functions.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("topview_callbacks", "0004_attempts_held_by_row_locks"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
