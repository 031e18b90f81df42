"""The headers of every download: an attachment with a safely quoted filename, never
sniffed into HTML or script by a browser."""

from __future__ import annotations

from urllib.parse import quote


def content_disposition(filename: str) -> str:
    """An attachment header for any filename: headers are latin-1, filenames are not
    (RFC 6266: an ASCII fallback plus the UTF-8 ``filename*``). Quotes, backslashes and
    control characters never reach the quoted fallback."""
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_headers(filename: str) -> dict[str, str]:
    """``Content-Disposition: attachment`` and ``X-Content-Type-Options: nosniff``."""
    return {
        "Content-Disposition": content_disposition(filename),
        "X-Content-Type-Options": "nosniff",
    }
