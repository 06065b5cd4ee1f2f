"""The local default: moto's S3 on loopback with the bucket and its CORS rules created,
then the signing service under gunicorn pointed at it. Ctrl-C stops both.

The bucket is created with requests signed by our own ``sign_headers`` (no SDK).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signer import Bucket, Credentials, sign_headers  # noqa: E402

CORS = """<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>
<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod>
<AllowedMethod>DELETE</AllowedMethod><AllowedMethod>HEAD</AllowedMethod><AllowedHeader>*</AllowedHeader>
<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule></CORSConfiguration>"""


def s3_call(credentials: Credentials, bucket: Bucket, method: str, query: str = "", body: bytes = b"") -> int:
    url = bucket.object_url("") + (f"?{query}" if query else "")
    headers = {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()} if body else {}
    headers.update(sign_headers(credentials, method, url, headers=headers, body=body, region=bucket.region))
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers)
    status = connection.getresponse().status
    connection.close()
    return status


def main() -> int:
    from moto.server import ThreadedMotoServer

    host, port = "127.0.0.1", int(os.environ.get("LOCAL_S3_PORT", "9000"))
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    bucket = Bucket(os.environ["SIGNER_BUCKET"], endpoint_url=os.environ["SIGNER_ENDPOINT_URL"], addressing_style="path")
    for method, query, body in (("PUT", "", b""), ("PUT", "cors", CORS.encode())):
        status = s3_call(credentials, bucket, method, query, body)
        if status not in (200, 204):
            print(f"local S3: {method} ?{query} answered {status}", file=sys.stderr)
            return 1
    print(f"local S3 (moto) on http://{host}:{port}, bucket {bucket.name!r} with CORS", flush=True)
    service = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT)
    try:
        return service.wait()
    except KeyboardInterrupt:
        service.terminate()
        return service.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
