"""Whether the bytes a client has sent so far make a whole HTTP/1.1 request.

The worker (signer.service.web.worker) reads each request in its event loop, without a thread,
and hands it to a thread only once this says it is all there, so a client that trickles its
headers or body holds a socket, never a thread. This is not a parser: gunicorn parses the
request again and refuses what is malformed. It only has to know when to stop waiting; where
the framing is anything but plain (two lengths, a length that is not a number, a transfer
coding other than chunked), the request goes to gunicorn at once, which refuses it (400)
without waiting for a body.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_HEAD = 16 * 1024  # request line and headers: a real client's fit (nginx's default buffers are 1k + 4 x 8k)


class Ready(enum.Enum):
    WAIT = "wait"  # more must arrive
    WHOLE = "whole"  # a whole request, or one gunicorn refuses from what has arrived: hand it to a thread
    HEAD_TOO_LARGE = "head_too_large"  # no end of headers within MAX_HEAD bytes
    BODY_TOO_LARGE = "body_too_large"  # a chunked body above the limit


@dataclass(frozen=True)
class Head:
    """What the worker needs from the headers: where they end, the framing, the forwarded peer."""

    end: int  # offset just past the blank line
    length: int | None  # Content-Length, when it is one plain number
    chunked: bool
    plain: bool  # False: framing gunicorn refuses (or decides) on the head alone
    forwarded_for: str | None  # the last X-Forwarded-For entry (what a trusted proxy appended)


@dataclass
class Progress:
    """How far the bytes of one request have been looked at, so each arrival is looked at once
    (a client trickling byte by byte must not make every byte rescan all before it)."""

    head: Head | None = None
    searched: int = 0  # no end of headers before this offset
    chunk_at: int = 0  # the next chunk-size line (chunked bodies), once the head is known
    chunk_total: int = 0  # body bytes in the chunks walked so far


_BEYOND_ANY_BODY = 10**18  # a length of more digits: above any SIGNER_MAX_BODY, refused unread
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_NAMES = (b"\r\ncontent-length:", b"\r\ntransfer-encoding:", b"\r\nx-forwarded-for:")


def parse_head(data: bytes | bytearray, start: int = 0) -> Head | None:
    """The head, once its blank line has arrived (searched for from ``start``); None before.
    Only the three headers that matter are looked for (C-speed finds in the lower-cased head: this
    runs for every request)."""
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        return None
    lowered = bytes(data[:end + 2]).lower()
    values: list[list[bytes]] = [[], [], []]
    for number, name in enumerate(_NAMES):
        at = lowered.find(name)
        while at >= 0:
            value_start = at + len(name)
            value_end = lowered.find(b"\r\n", value_start)
            values[number].append(lowered[value_start:value_end].strip())
            at = lowered.find(name, value_end)
    lengths, encodings, forwarded = values
    codings = [c.strip() for value in encodings for c in value.split(b",")]
    digits = lengths[0].lstrip(b"0") if len(lengths) == 1 and lengths[0].isdigit() else None  # gunicorn reads 005 as 5
    length = None if digits is None else int(digits or b"0") if len(digits) <= 18 else _BEYOND_ANY_BODY
    chunked = codings[-1:] == [b"chunked"] and codings.count(b"chunked") == 1  # gunicorn reads "gzip, chunked" so too
    plain = (not lengths and (not codings or chunked)) or (length is not None and not codings)
    last = next((v.rpartition(b",")[2].strip() for v in reversed(forwarded) if v.rpartition(b",")[2].strip()), None)
    peer = last.decode("latin-1") if last is not None else None  # lower-cased: IPv6 hex reads the same
    return Head(end=end + 4, length=length, chunked=chunked, plain=plain, forwarded_for=peer)


def readiness(data: bytes | bytearray, max_body: int, progress: Progress) -> Ready:
    """Whether ``data`` (everything read for this request so far) is worth a thread yet;
    ``progress`` remembers what earlier calls saw (one Progress per request)."""
    if progress.head is None:
        progress.head = parse_head(data, progress.searched)
        if progress.head is None:
            progress.searched = max(len(data) - 3, 0)
            return Ready.HEAD_TOO_LARGE if len(data) > MAX_HEAD else Ready.WAIT
        progress.chunk_at = progress.head.end
    head = progress.head
    if head.end > MAX_HEAD + 4:
        return Ready.HEAD_TOO_LARGE
    if not head.plain:
        return Ready.WHOLE
    if head.chunked:
        if len(data) - head.end > 2 * max_body + MAX_HEAD:  # chunk lines and trailers beyond any use
            return Ready.BODY_TOO_LARGE
        return _chunked(data, max_body, progress)
    length = head.length or 0
    if length > max_body:
        return Ready.WHOLE  # refused as too large (413) before the app reads a byte of it
    return Ready.WHOLE if len(data) - head.end >= length else Ready.WAIT


def _chunked(data: bytes | bytearray, max_body: int, progress: Progress) -> Ready:
    """Walk the chunks not walked yet: whole once the last chunk and its trailers have arrived."""
    while True:
        position = progress.chunk_at
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return Ready.WAIT if len(data) - position <= 1024 else Ready.WHOLE  # a size line that long: refused
        size_text, extension, _ = bytes(data[position:line_end]).partition(b";")
        size_text = size_text.rstrip(b" \t") if extension else size_text  # white space only before an extension
        # gunicorn's spelling: hex digits only, as many as the line holds (leading zeros too)
        size = int(size_text, 16) if size_text and not size_text.strip(_HEX_DIGITS) else -1
        if size < 0:
            return Ready.WHOLE  # malformed: gunicorn refuses it
        if size == 0:
            return _trailers_end(data, line_end + 2)
        if line_end + 2 + size + 2 > len(data):
            return Ready.WAIT  # this chunk is not all here yet: walk it again when more is
        progress.chunk_total += size
        if progress.chunk_total > max_body:
            return Ready.BODY_TOO_LARGE
        progress.chunk_at = line_end + 2 + size + 2


def _trailers_end(data: bytes | bytearray, position: int) -> Ready:
    """After the last chunk: trailer lines, then a blank line ends the request."""
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return Ready.WAIT if len(data) - position <= MAX_HEAD else Ready.WHOLE
        if line_end == position:
            return Ready.WHOLE
        position = line_end + 2
