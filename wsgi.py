"""gunicorn entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

import logging
import sys

from signer.service import grants
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


def _audit_to_stderr() -> None:
    """One line per grant (signer/service/grants.py) on stderr: ``audit {JSON}`` with identity, kind,
    bucket, key, method, expiry, protocol; never a secret. The word first: lines that start with '{'
    are the access log's."""
    grants.audit_stream = grants.AuditStream(sys.stderr.fileno())


_log_credentials_to_stderr()
_audit_to_stderr()
app = create_app()
