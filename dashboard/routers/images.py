"""Images from the content-addressed store, by digest only: no file name ever reaches the disk."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from dashboard.deps import Operator, get_workspace

router = APIRouter(tags=["images"])

_MEDIA_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"BM", "image/bmp"))


def media_type(data: bytes) -> str:
    return next((kind for magic, kind in _MEDIA_TYPES if data.startswith(magic)), "application/octet-stream")


@router.get("/images/{sha256}")
def image(
    request: Request, user: Operator, sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
) -> Response:
    data = get_workspace(request).store.get(sha256)  # StorageError (404) when absent
    # Content never changes under a digest, so browsers may keep it; private: it needs a login.
    headers = {"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}
    return Response(data, media_type=media_type(data), headers=headers)
