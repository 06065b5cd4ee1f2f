"""gunicorn entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

import logging
import sys

from signer.service.web.app import create_app


def _log_credentials_to_stderr() -> None:
    """Credential refreshes and failures (signer.refresh) go to gunicorn's error log (stderr):
    operators must see when credentials rotate or a provider fails. Never secrets."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"))
    logger = logging.getLogger("signer.credentials")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


class _AuditLines(logging.StreamHandler):  # type: ignore[type-arg]
    """``audit <the record's message>``, written as it is: no formatter (this runs per grant)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(f"audit {record.getMessage()}\n")
            self.flush()
        except Exception:  # noqa: BLE001 - as logging does: a failed write is reported, never raised
            self.handleError(record)


def _audit_to_stderr() -> None:
    """One line per grant (signer/service/grants.py) on stderr: ``audit {JSON}`` with identity, kind,
    bucket, key, method, expiry, protocol; never a secret. The word first: lines that start with '{'
    are the access log's."""
    handler = _AuditLines(sys.stderr)
    logger = logging.getLogger("signer.audit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


_log_credentials_to_stderr()
_audit_to_stderr()
app = create_app()
