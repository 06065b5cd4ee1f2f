"""The signing service: configuration, the rules and request plan, callers, protocol
adapters and the service's own S3 calls. No Flask here (that is :mod:`signer.service.web`),
so the CLI runs with the library alone."""
