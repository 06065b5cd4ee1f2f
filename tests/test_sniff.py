"""check_content's judgement of first bytes (signer/service/sniff.py), from bytes made here."""

from __future__ import annotations

import struct
import zlib

import pytest

from signer.service.errors import NotAllowed
from signer.service.sniff import check_content


def png() -> bytes:
    """A real 1x1 PNG, built from the PNG specification (signature, IHDR, IDAT, IEND)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


@pytest.mark.parametrize(("declared", "data"), [("image/png", png()), ("application/pdf", PDF),
                                                ("image/jpeg", JPEG), ("image/PNG; charset=binary", png())])
def test_bytes_of_the_declared_type_pass(declared, data) -> None:
    check_content(declared, data)


@pytest.mark.parametrize(("declared", "data", "says"), [
    ("image/png", HTML, "look like text/html, not the declared image/png"),
    ("image/png", PDF, "look like application/pdf"),
    ("application/pdf", png(), "look like image/png"),
    ("image/png", b"just some words", "match no known type"),
    (None, png(), r"not the declared type \(none\)"),
])
def test_other_bytes_are_refused_saying_why(declared, data, says) -> None:
    with pytest.raises(NotAllowed, match=says) as refused:
        check_content(declared, data)
    assert refused.value.code == "content_mismatch"
