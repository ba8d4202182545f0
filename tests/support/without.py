"""Code run in a new Python process where some packages can't be imported: what the
package does for a user who did not install an optional dependency."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_HIDE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if any(name == hidden or name.startswith(hidden + ".") for hidden in HIDDEN):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
import django
django.setup()
"""


def run_without(hidden: tuple[str, ...], code: str) -> str:
    """Run ``code`` in a new Python process where ``hidden`` packages can't be imported,
    after ``django.setup()`` with the test settings (on SQLite); returns its output."""
    script = f"HIDDEN = {hidden!r}\n{_HIDE}\n{textwrap.dedent(code)}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env.pop("TOPVIEW_TEST_DATABASE", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
