"""MkDocs hook (mkdocs.yml `hooks:`): publish the package's OpenAPI document with the site.

The contract lives in the package (topview_callbacks/openapi.yaml, shipped in the wheel);
this adds it to the site as /openapi.yaml, so pages can link to it and a link checker
sees it, without keeping a copy in docs/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

OPENAPI = Path(__file__).resolve().parent.parent / "topview_callbacks" / "openapi.yaml"


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "openapi.yaml", abs_src_path=str(OPENAPI)))
    return files
