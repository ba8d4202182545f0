"""Uploading a local file to Topview's storage, for submits that take a ``fileId``."""

from __future__ import annotations

import mimetypes
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from topview_callbacks.biz_types import UPLOAD_CHECK_PATH, UPLOAD_CREDENTIAL_PATH
from topview_callbacks.client.session import TopviewSession
from topview_callbacks.exceptions import TopviewAPIError, TopviewConnectionError, TopviewError


@dataclass(frozen=True)
class UploadedFile:
    """A file uploaded to Topview's storage; pass ``file_id`` to submits (``imageFileId``...)."""

    file_id: str
    file_name: str


class Uploads(TopviewSession):
    """``upload``: Topview's three steps (credential, PUT to storage, visibility check)."""

    #: How often and how far apart ``upload`` asks whether the uploaded file is visible.
    upload_check_attempts = 5
    upload_check_interval = 1.0

    def upload(
        self, path_or_file: str | os.PathLike[str] | IO[bytes], *, file_format: str | None = None
    ) -> UploadedFile:
        """Upload a local file in Topview's three steps; returns the ``fileId`` to submit.

        1. ask for a credential (a presigned URL), 2. PUT the bytes there without Topview's
        headers (the URL carries its own signature), 3. ask until Topview sees the file.
        """
        if isinstance(path_or_file, (str, os.PathLike)):
            path = Path(path_or_file)
            with path.open("rb") as handle:
                return self._upload(handle, path.name, file_format)
        name = str(getattr(path_or_file, "name", "") or "")
        return self._upload(path_or_file, os.path.basename(name), file_format)

    def _upload(self, handle: IO[bytes], name: str, file_format: str | None) -> UploadedFile:
        extension = (file_format or Path(name).suffix.lstrip(".")).lower()
        if not extension:
            raise TopviewError("Give file_format= (e.g. 'mp4'): the file has no extension.")
        credential = self.request("GET", UPLOAD_CREDENTIAL_PATH, params={"format": extension})
        if not isinstance(credential, dict) or not credential.get("uploadUrl"):
            raise TopviewAPIError(
                f"The upload credential has no uploadUrl: {credential!r}", code="200"
            )
        content_type = mimetypes.guess_type(f"x.{extension}")[0] or "application/octet-stream"
        try:
            # None removes the session's Topview headers: S3 refuses a second auth scheme.
            response = self.session.put(
                credential["uploadUrl"],
                data=handle,
                headers={
                    "Topview-Uid": None,
                    "Authorization": None,
                    "Accept": None,
                    "Content-Type": content_type,
                },
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise TopviewConnectionError(
                f"The upload of {name or 'the file'} failed: {exc}"
            ) from exc
        if not response.ok:
            raise TopviewAPIError(
                f"The storage refused the upload: {response.text[:200]}",
                code=str(response.status_code),
                http_status=response.status_code,
            )
        file_id = str(credential.get("fileId") or "")
        for attempt in range(self.upload_check_attempts):
            if self.request("GET", UPLOAD_CHECK_PATH, params={"fileId": file_id}) is True:
                return UploadedFile(file_id, str(credential.get("fileName") or name))
            if attempt + 1 < self.upload_check_attempts:
                time.sleep(self.upload_check_interval)
        raise TopviewError(
            f"Topview does not see uploaded file {file_id} after "
            f"{self.upload_check_attempts} checks; try the check again later."
        )
