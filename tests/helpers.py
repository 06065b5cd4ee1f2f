"""Helpers shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from signer.errors import SigningError
from signer.service.errors import Refused, status_of

FORBIDDEN = 403  # well formed, outside the rules
MALFORMED = 400


@contextmanager
def refused(status: int, match: str | None = None) -> Iterator[None]:
    """Expect a refusal (service or library) whose code answers with ``status``."""
    with pytest.raises((Refused, SigningError), match=match) as caught:
        yield
    assert status_of(caught.value.code) == status, f"{caught.value.code} is not a {status}"
