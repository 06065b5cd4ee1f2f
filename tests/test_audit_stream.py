"""The audit lines of a worker (signer/service/grants.py, AuditStream): queued on the request's
thread, written by a thread of their own within AUDIT_FLUSH, in order, none lost at close, and
written by the request itself once a stalled reader lets the queue pass AUDIT_BACKLOG."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from signer.service import grants
from signer.service.grants import AuditStream, Grant


def read(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture
def descriptor(tmp_path):
    path = tmp_path / "stderr"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    yield fd, path
    os.close(fd)


def test_lines_reach_the_descriptor_in_order_within_the_flush_interval(descriptor) -> None:
    fd, path = descriptor
    stream = AuditStream(fd, every=0.05)
    threads = [threading.Thread(target=lambda n=n: [stream.write(f'{{"n":{n},"i":{i}}}') for i in range(200)])
               for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 5
    while len(read(path)) < 800:
        assert time.monotonic() < deadline, f"{len(read(path))} of 800 lines written"
        time.sleep(0.02)
    lines = read(path)
    assert all(line.startswith('audit {"n":') and line.endswith("}") for line in lines)  # whole lines, never torn
    for n in range(4):  # each thread's lines in the order it wrote them
        mine = [line for line in lines if line.startswith(f'audit {{"n":{n},')]
        assert mine == [f'audit {{"n":{n},"i":{i}}}' for i in range(200)]


def test_close_writes_what_is_still_queued(descriptor) -> None:
    fd, path = descriptor
    stream = AuditStream(fd, every=60)  # the thread would not write for a minute
    for i in range(3):
        stream.write(f'{{"i":{i}}}')
    assert read(path) == []
    stream.close()
    assert read(path) == [f'audit {{"i":{i}}}' for i in range(3)]


def test_a_backlog_is_written_by_the_request_that_finds_it(descriptor, monkeypatch) -> None:
    fd, path = descriptor
    monkeypatch.setattr(grants, "AUDIT_BACKLOG", 10)
    stream = AuditStream(fd, every=60)
    for i in range(12):
        stream.write(f'{{"i":{i}}}')
    assert len(read(path)) == 11  # the first started the thread; the 12th found 11 queued and wrote them


def test_a_grants_line_is_queued_before_issue_returns(descriptor, monkeypatch) -> None:
    fd, path = descriptor
    stream = AuditStream(fd, every=60)
    monkeypatch.setattr(grants, "audit_stream", stream)
    grant = Grant("presign", "alice", "token", "default", "bucket", "uploads/alice/a.png", "PUT")
    signed = grants.issue(grant, lambda: ("signed", None), finish=None, clock_skew=900, now=None)  # type: ignore[arg-type]
    assert signed == "signed" and len(stream._queued) == 1  # queued, not yet written
    stream.close()
    assert read(path) == ['audit {"event":"grant","identity":"alice","via":"token","kind":"default","bucket":"bucket",'
                          '"key":"uploads/alice/a.png","method":"PUT","expires_at":null,"protocol":"presign"}']


def test_a_forked_child_leaves_its_parents_lines_to_the_parent(descriptor) -> None:
    fd, path = descriptor
    stream = AuditStream(fd, every=60)
    stream.write('{"i":"parent"}')
    child = os.fork()
    if child == 0:  # the child: one line of its own, written at once, then gone without cleanup
        stream.write('{"i":"child"}')
        stream.close()
        os._exit(0)
    os.waitpid(child, 0)
    stream.close()
    assert sorted(read(path)) == ['audit {"i":"child"}', 'audit {"i":"parent"}']  # each line once
