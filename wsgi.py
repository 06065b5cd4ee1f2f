"""gunicorn entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

from signer.service.web.app import create_app

app = create_app()
