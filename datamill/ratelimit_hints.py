"""What a provider's rate-limit headers said, on a success or on an error answer.

At the bottom of the package, beside `errors.py`: a `ProviderError` carries the hints of
the answer it was made from (a 429 says what is left and when it resets, as a success
does), and the scheduler reads them the same way whichever answer brought them
(`datamill.scheduler.headers`). Each provider's headers are read into this shape in
`datamill.providers.ratelimit_headers`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimitHints:
    """What the provider's ``x-ratelimit-*`` headers said, when it sent them."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None  # seconds until the request window resets
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None
