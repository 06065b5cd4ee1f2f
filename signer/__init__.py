"""sigv4-signer: AWS Signature Version 4 for S3 uploads, standard library only."""

from importlib.metadata import PackageNotFoundError, version

from .credentials import Credentials
from .errors import (
    CredentialsUnavailable,
    InvalidBucket,
    InvalidCredentials,
    InvalidExpiry,
    InvalidHeader,
    InvalidInput,
    InvalidKey,
    InvalidSetting,
    InvalidTime,
    SigningError,
)
from .headers import SignedRequest, sign_headers, sign_request
from .post_policy import PostForm, presign_post, sign_policy
from .presign import PresignedRequest, PresignedURL, presign_request, presign_url
from .providers import credentials_chain
from .refresh import RefreshingCredentials
from .s3 import Bucket, check_bucket_name, encode_key
from .sigv4 import (
    canonical_headers,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    credential_scope,
    sign_string_to_sign,
    signature,
    signing_key,
    string_to_sign,
)

__all__ = [
    "Bucket",
    "Credentials",
    "CredentialsUnavailable",
    "InvalidBucket",
    "InvalidCredentials",
    "InvalidExpiry",
    "InvalidHeader",
    "InvalidInput",
    "InvalidKey",
    "InvalidSetting",
    "InvalidTime",
    "PostForm",
    "PresignedRequest",
    "PresignedURL",
    "RefreshingCredentials",
    "SignedRequest",
    "SigningError",
    "canonical_headers",
    "canonical_query_string",
    "canonical_request",
    "canonical_uri",
    "check_bucket_name",
    "credential_scope",
    "credentials_chain",
    "encode_key",
    "presign_post",
    "presign_request",
    "presign_url",
    "sign_headers",
    "sign_policy",
    "sign_request",
    "sign_string_to_sign",
    "signature",
    "signing_key",
    "string_to_sign",
]

try:
    __version__ = version("sigv4-signer")
except PackageNotFoundError:  # running from a checkout that was not pip-installed
    __version__ = "0.2.0"
