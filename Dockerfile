# sigv4-signer: the signing service, served by gunicorn. Configuration comes only
# from the environment (see README); nothing secret is baked into the image.
# Runs with a read-only root filesystem and no capabilities: gunicorn's heartbeat and the socket
# behind the front live in /dev/shm (a tmpfs in every container) and it opens no control socket.
# HAProxy (Debian's) is the front: gunicorn's master starts it on SIGNER_BIND, and it reads every
# request whole before gunicorn sees it (signer/service/web/front.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SIGNER_BIND=0.0.0.0:8080

WORKDIR /app
# Not pinned: the base's Debian release decides the version, and its security updates should flow in.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
    && groupadd --system --gid 10001 signer \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin signer

COPY signer/ signer/
COPY wsgi.py gunicorn.conf.py ./

USER 10001:10001
EXPOSE 8080
# Probes where gunicorn really listens: SIGNER_BIND (a wildcard host means loopback).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h, _, p = os.environ.get('SIGNER_BIND', '0.0.0.0:8080').rpartition(':'); h = {'': '127.0.0.1', '0.0.0.0': '127.0.0.1', '[::]': '[::1]'}.get(h, h); u.urlopen(f'http://{h}:{p}/healthz', timeout=2)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
