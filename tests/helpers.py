"""Constants and helpers shared by the test modules: one test moment, one key pair, one bucket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from signer import Bucket, Credentials
from signer.errors import SigningError
from signer.service.errors import Refused, status_of

NOW = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
FROZEN = "2026-11-23 08:00:00"  # NOW for freezegun
ACCESS_KEY = "AKIDEXAMPLE12345"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = Credentials(ACCESS_KEY, SECRET_KEY)
BUCKET = Bucket("uploads-bucket")

FORBIDDEN = 403  # well formed, outside the rules
MALFORMED = 400


@contextmanager
def refused(status: int, match: str | None = None) -> Iterator[None]:
    """Expect a refusal (service or library) whose code answers with ``status``."""
    with pytest.raises((Refused, SigningError), match=match) as caught:
        yield
    assert status_of(caught.value.code) == status, f"{caught.value.code} is not a {status}"
