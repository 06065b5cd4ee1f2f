"""signer.service.web.framing: when the bytes read so far make a whole request (issue #22).

The expected answer comes from how each request is built here (where its head and body end),
not from the code under test: every strict prefix of a whole request must wait, the whole
request must not, whatever the split; chunked bodies are encoded here with random chunk sizes.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signer.service.web.framing import MAX_HEAD, Progress, Ready, parse_head, readiness

MAX_BODY = 64 * 1024


def head(*lines: str) -> bytes:
    return ("POST /v1/presign HTTP/1.1\r\nHost: signer\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def chunked(body: bytes, sizes: list[int], trailers: list[str]) -> bytes:
    out, position = b"", 0
    for size in sizes:
        piece = body[position:position + size]
        if not piece:
            break
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
        position += len(piece)
    if position < len(body):
        out += b"%x\r\n%s\r\n" % (len(body) - position, body[position:])
    return out + b"0\r\n" + "".join(f"{t}\r\n" for t in trailers).encode() + b"\r\n"


def fed(data: bytes, cuts: list[int]) -> list[Ready]:
    """Feed ``data`` in pieces (at the sorted ``cuts``) through one Progress, as the worker does."""
    progress, answers = Progress(), []
    for cut in [*sorted(set(cuts)), len(data)]:
        answers.append(readiness(data[:cut], MAX_BODY, progress))
    return answers


bodies = st.binary(min_size=0, max_size=3000)


@given(body=bodies, cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_a_request_with_a_length_is_whole_only_when_all_of_it_is_there(body: bytes, cuts: list[int]) -> None:
    request = head("Content-Type: application/json", f"Content-Length: {len(body)}") + body
    cuts = [c for c in cuts if c < len(request)]
    assert fed(request, cuts) == [Ready.WAIT] * len(set(cuts)) + [Ready.WHOLE]


@given(body=bodies, sizes=st.lists(st.integers(min_value=1, max_value=700), max_size=8),
       trailers=st.lists(st.sampled_from(["X-Checksum: abc", "X-More: 1"]), max_size=2),
       cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=12))
def test_a_chunked_request_is_whole_only_after_its_last_chunk_and_trailers(
        body: bytes, sizes: list[int], trailers: list[str], cuts: list[int]) -> None:
    request = head("Transfer-Encoding: chunked") + chunked(body, sizes, trailers)
    cuts = [c for c in cuts if c < len(request)]
    assert fed(request, cuts) == [Ready.WAIT] * len(set(cuts)) + [Ready.WHOLE]


def test_a_request_without_a_body_is_whole_at_its_blank_line() -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: signer\r\n\r\n"
    assert [readiness(request[:n], MAX_BODY, Progress()) for n in (len(request) - 1, len(request))] == [
        Ready.WAIT, Ready.WHOLE]


@pytest.mark.parametrize("lines", [
    ["Content-Length: 5", "Content-Length: 6"],  # two lengths
    ["Content-Length: 5", "Transfer-Encoding: chunked"],  # both framings
    ["Content-Length: -1"], ["Content-Length: 0x10"], ["Content-Length: \u0665"],
    ["Transfer-Encoding: gzip"], ["Transfer-Encoding: chunked, chunked"],
])
def test_framing_gunicorn_refuses_goes_to_it_without_waiting_for_a_body(lines: list[str]) -> None:
    assert readiness(head(*lines), MAX_BODY, Progress()) is Ready.WHOLE


def test_a_length_above_the_limit_goes_on_at_once_to_be_refused_unread() -> None:
    assert readiness(head(f"Content-Length: {MAX_BODY + 1}"), MAX_BODY, Progress()) is Ready.WHOLE
    assert readiness(head(f"Content-Length: {MAX_BODY}"), MAX_BODY, Progress()) is Ready.WAIT


def test_too_much_is_refused_without_reading_on() -> None:
    assert readiness(b"GET /" + b"a" * MAX_HEAD, MAX_BODY, Progress()) is Ready.HEAD_TOO_LARGE
    assert readiness(head("X-Big: " + "b" * MAX_HEAD), MAX_BODY, Progress()) is Ready.HEAD_TOO_LARGE
    too_big = head("Transfer-Encoding: chunked") + b"%x\r\n" % (MAX_BODY + 1) + b"x" * (MAX_BODY + 3)
    assert readiness(too_big, MAX_BODY, Progress()) is Ready.BODY_TOO_LARGE
    many = head("Transfer-Encoding: chunked") + b"1\r\nx\r\n" * (MAX_BODY // 2 + 4000)  # framing beyond any use
    assert readiness(many, MAX_BODY, Progress()) is Ready.BODY_TOO_LARGE


def test_the_forwarded_peer_is_the_last_x_forwarded_for_entry() -> None:
    parsed = parse_head(head("X-Forwarded-For: 203.0.113.9, 198.51.100.7", "Content-Length: 0"))
    assert parsed is not None and parsed.forwarded_for == "198.51.100.7"
    assert parse_head(head("Content-Length: 0")).forwarded_for is None  # type: ignore[union-attr]


def gunicorn_body_reader(request: bytes) -> str:
    """The body reader gunicorn's own parser (the one the thread runs) picks for this head: the oracle."""
    from gunicorn.config import Config as GunicornConfig  # type: ignore[import-untyped]
    from gunicorn.http.parser import RequestParser  # type: ignore[import-untyped]

    try:
        parsed = next(RequestParser(GunicornConfig(), iter([request]), ("127.0.0.1", 1)))
    except Exception as exc:  # noqa: BLE001 - a refusal is an answer here
        return f"refused: {type(exc).__name__}"
    return type(parsed.body.reader).__name__


@pytest.mark.parametrize("lines", [
    ["Transfer-Encoding: gzip, chunked"], ["Transfer-Encoding: identity, chunked"],
    ["Transfer-Encoding: deflate,chunked"], ["Transfer-Encoding: gzip", "Transfer-Encoding: chunked"],
])
def test_a_stacked_coding_gunicorn_reads_as_chunked_is_waited_for(lines: list[str]) -> None:
    """gunicorn reads these bodies as chunked: handed on at the blank line, the thread would then
    read a trickled body from the socket itself (a slow client holding a thread, issue #22)."""
    assert gunicorn_body_reader(head(*lines)) == "ChunkedReader"
    assert readiness(head(*lines), MAX_BODY, Progress()) is Ready.WAIT
    assert readiness(head(*lines) + chunked(b"hello", [2], []), MAX_BODY, Progress()) is Ready.WHOLE


@pytest.mark.parametrize("size", ["5", "05", "0" * 16 + "5", "0" * 40 + "5", "5;ext=1", "5 ;ext", "5\t;ext"])
def test_a_chunk_size_gunicorn_reads_is_waited_for_until_its_chunk_is_there(size: str) -> None:
    """gunicorn takes any number of hex digits (leading zeros too) and white space before an
    extension; a size line the worker refused would hand the request on before its chunk, and the
    thread would read a trickled chunk from the socket itself."""
    from gunicorn.config import Config as GunicornConfig  # type: ignore[import-untyped]
    from gunicorn.http.parser import RequestParser  # type: ignore[import-untyped]

    request = head("Transfer-Encoding: chunked") + f"{size}\r\nhello\r\n0\r\n\r\n".encode()
    assert next(RequestParser(GunicornConfig(), iter([request]), ("127.0.0.1", 1))).body.read() == b"hello"
    cut = request.index(b"hello")
    assert readiness(request[:cut], MAX_BODY, Progress()) is Ready.WAIT
    assert readiness(request, MAX_BODY, Progress()) is Ready.WHOLE


@pytest.mark.parametrize("length", ["0" * 18 + "5", "0" * 100 + "5"])
def test_a_length_gunicorn_reads_with_leading_zeros_is_waited_for(length: str) -> None:
    """gunicorn reads Content-Length 000…05 as 5: handed on at the blank line, the thread would read
    a trickled body from the socket itself."""
    from gunicorn.config import Config as GunicornConfig  # type: ignore[import-untyped]
    from gunicorn.http.parser import RequestParser  # type: ignore[import-untyped]

    request = head(f"Content-Length: {length}") + b"hello"
    assert next(RequestParser(GunicornConfig(), iter([request]), ("127.0.0.1", 1))).body.read() == b"hello"
    assert readiness(request[:-5], MAX_BODY, Progress()) is Ready.WAIT
    assert readiness(request, MAX_BODY, Progress()) is Ready.WHOLE


def test_a_length_of_more_digits_than_any_body_goes_on_at_once_to_be_refused_unread() -> None:
    assert readiness(head("Content-Length: " + "9" * 30), MAX_BODY, Progress()) is Ready.WHOLE
    assert readiness(head("Content-Length: " + "9" * 5000), MAX_BODY, Progress()) is Ready.WHOLE
