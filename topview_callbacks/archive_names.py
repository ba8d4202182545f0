"""Where an archived file goes in the storage: ``ARCHIVE_PATH`` filled in with names that
cannot collide.

The account, bizType and task id in a name come from notices, which are unsigned. Each
value is used as it is when it is plainly a name (letters, digits, ``_`` and ``-``);
any other value is reduced to those characters and followed by ``.`` and 16 hex digits of
its SHA-256. A plain name never holds a ``.``, so it never equals a reduced one, and two
reduced ones are equal only if their hashes are: different values never share a folder
(``.X`` and ``X`` once did, and the second download replaced the first one's file). The
extension comes from ``downloads.formats``, never from the URL as such.

System check E042 keeps ``ARCHIVE_PATH`` injective: ``{account}``, ``{biz_type}`` and
``{task_id}`` each a folder of their own, ``{kind}`` and ``{index}`` in the file's name.
"""

from __future__ import annotations

import hashlib
import re

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import ArchivedMedia

# Topview's task ids and bizTypes, and account names, are of this shape.
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_OTHER = re.compile(r"[^A-Za-z0-9_-]+")
HASH_DIGITS = 16  # 64 bits: finding a second value with the same name is out of reach
READABLE_LENGTH = 48


def component(value: str) -> str:
    """``value`` as one folder or file-name part: itself when plain, else a readable
    reduction followed by a hash of the value (see the module's docstring)."""
    if _PLAIN.fullmatch(value):
        return value
    readable = _OTHER.sub("_", value)[:READABLE_LENGTH] or "_"
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{readable}.{digest[:HASH_DIGITS]}"


def target_name(media: ArchivedMedia, extension: str) -> str:
    """The file's final name in the storage, from ``ARCHIVE_PATH``; ``extension`` is the
    one ``downloads.formats`` chose (".mp4")."""
    task = media.task
    return topview_settings.archive_path.format(
        account=component(task.account),
        biz_type=component(task.biz_type),
        task_id=component(task.task_id),
        kind=component(media.kind),
        index=media.index,
        ext=extension,
    )


def partial_name(media: ArchivedMedia, claim: str) -> str:
    """Where one attempt writes before the file is complete: beside the final name, its
    extension ``.part`` (no server takes it for a page or a script)."""
    return f"{target_name(media, '')}.{claim[:12]}.part"
