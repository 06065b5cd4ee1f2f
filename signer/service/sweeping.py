"""Who sweeps, and when: one sweeper per replica, woken by the worker that wrote a marker.

A replica is one gunicorn master and its workers. They share a private folder (made by the master,
gunicorn.conf.py); every worker runs a :class:`Sweeper` thread, but only the one holding an
exclusive ``flock`` on ``<folder>/sweeper.lock`` sweeps: the kernel drops the lock when that worker
exits or is killed, and another worker takes it within a second. So a replica lists the store as
often as one sweeper does, whatever its worker count (issue #30).

The leader listens on a Unix datagram socket, ``<folder>/wake.sock``: a worker that writes a
marker sends it the marker's due time (:class:`signer.service.finish.Alarm`), and the leader
sweeps at that moment. With nothing due it lists the store only as a safety net for markers a
dead replica left: after ``3 × SIGNER_FINISH_INTERVAL``, then twice as long each time it finds
nothing, at most ``9 ×`` (90 s by default, give or take a tenth), so an idle replica makes about
40 LISTs an hour and a marker of a SIGKILLed replica is found within about 100 s. A sweep that
took all it may goes on at once, with :data:`CONCURRENCY` markers at a time: a backlog drains.

Datagrams rather than a pipe or a shared-memory flag: a worker can send one without knowing
whether a leader exists, it never blocks (a full queue drops the datagram; the schedule still
finds the marker), and the kernel frees everything when a process dies. The leader also writes
the store clock's offset (:class:`signer.service.finish.StoreClock`) to ``<folder>/clock``, which
the other workers read, since they no longer sweep and so never read the store's ``Date``
themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import Refused
from .finish import Finish, Pass, sweep_pass
from .server import private_folder

log = logging.getLogger("signer")

IDLE_FIRST = 3
"""An idle sweeper's first pause, in SIGNER_FINISH_INTERVALs; it doubles each time it finds nothing."""
IDLE_MOST = 9
"""An idle sweeper's longest pause, in SIGNER_FINISH_INTERVALs (90 s by default)."""
CONCURRENCY = 8
"""Markers one sweeper works on at once: the store's and the webhook's round trips overlap."""
FOLLOW = 1.0
"""Seconds between a follower's tries at the lock (and reads of the leader's clock offset)."""


def replica_folder() -> str:
    """A fresh private folder (0700) for one replica's lock and socket, in /dev/shm where there is one
    (RAM-backed, writable under a read-only root)."""
    return private_folder("sigv4-signer-finish-")


class Sweeper:
    """One thread per worker process; the replica's leader sweeps (see the module's docstring).
    ``folder`` is the replica's folder; without one, this process is a replica by itself.
    ``also`` runs beside the sweeps while this worker leads (the event queue's poller). ``more``
    are the other upload kinds' finish steps (their buckets and prefixes, signer/service/kinds.py):
    one sweeper covers them all, on ``finish``'s schedule and store clock."""

    def __init__(self, finish: Finish, folder: str | None = None,
                 also: Callable[[threading.Event], None] | None = None, *, more: tuple[Finish, ...] = ()) -> None:
        self.finish = finish
        self.finishes = (finish, *more)
        self.folder = Path(folder or replica_folder())
        self.also = also
        self.leading = False
        self._stop = threading.Event()
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="signer-finish-sweeper", daemon=True)
        for each in self.finishes:
            each.alarm.path = str(self.folder / "wake.sock")

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            lock = os.open(self.folder / "sweeper.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.error("finish step: cannot open the sweeper lock (%s): this worker never sweeps", exc.strerror)
            return
        while not self._stop.is_set():
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                self._follow()
                self._stop.wait(FOLLOW)
        else:
            return
        try:
            self._lead()
        finally:
            os.close(lock)  # the lock goes with it

    def _follow(self) -> None:
        """Not the leader: take the leader's reading of the store's clock, for the markers this worker names."""
        with contextlib.suppress(OSError, ValueError):
            self.finish.clock.offset = int((self.folder / "clock").read_text())

    def _lead(self) -> None:
        self.leading = True
        wake = str(self.folder / "wake.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(wake)  # a dead leader's
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(wake)
        if self.also is not None:
            threading.Thread(target=self.also, args=(self._stop,), name="signer-events", daemon=True).start()
        with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="signer-finish") as pool:
            self._schedule(pool)
        self._socket.close()

    def _schedule(self, pool: ThreadPoolExecutor) -> None:
        interval = self.finish.interval
        idle = float(interval)
        sweep_at = time.monotonic()  # a new leader sweeps at once: it knows nothing yet
        offset = None
        while not self._stop.is_set():
            pause = sweep_at - time.monotonic()
            if pause > 0:
                due = self._receive(pause)
                if due is not None:  # a marker written here: sweep when it is due
                    sweep_at = min(sweep_at, time.monotonic() + max(0.0, due - self._store_seconds()) + 0.2)
                    idle = float(interval)
                continue
            try:
                done = self._sweep(pool)
            except Refused as exc:
                log.warning("finish step: sweep failed: %s", exc.message)
                sweep_at = time.monotonic() + interval
                continue
            except Exception:  # a bug must not stop the sweeping silently
                log.exception("finish step: sweep failed")
                sweep_at = time.monotonic() + interval
                continue
            if self.finish.clock.offset != offset:
                offset = self.finish.clock.offset
                self._share_clock(offset)
            if done.full:  # more may be due: go on at once, so a backlog drains instead of trickling
                sweep_at = time.monotonic()
                continue
            idle = float(interval) if done.claimed else min(IDLE_MOST * interval, max(IDLE_FIRST * interval, idle * 2))
            pause = idle * random.uniform(0.9, 1.1)  # noqa: S311 - spread, not secrecy
            if done.next_due is not None:
                pause = min(pause, max(0.0, done.next_due - self._store_seconds()) + random.uniform(0.2, 1.0))  # noqa: S311
            sweep_at = time.monotonic() + pause

    def _sweep(self, pool: ThreadPoolExecutor) -> Pass:
        """One pass over every kind's markers, told as one: full if any was, the earliest next due."""
        passes = [sweep_pass(finish, stop=self._stop, pool=pool) for finish in self.finishes]
        dues = [done.next_due for done in passes if done.next_due is not None]
        return Pass(sum(done.claimed for done in passes), any(done.full for done in passes),
                    min(dues) if dues else None)

    def _receive(self, timeout: float) -> int | None:
        """The earliest due time among the datagrams that arrive within ``timeout`` seconds (all
        that are queued, once one has come), or None."""
        assert self._socket is not None
        self._socket.settimeout(timeout)
        earliest: int | None = None
        try:
            while True:
                data = self._socket.recv(64)
                with contextlib.suppress(ValueError):
                    due = int(data)
                    earliest = due if earliest is None else min(earliest, due)
                self._socket.settimeout(0)
        except OSError:  # the timeout, or the queue is empty
            pass
        return earliest

    def _store_seconds(self) -> float:
        return self.finish.clock.store_now(self.finish.now()).timestamp()

    def _share_clock(self, offset: int) -> None:
        path = self.folder / "clock"
        with contextlib.suppress(OSError):
            temporary = path.with_suffix(f".{os.getpid()}")
            temporary.write_text(str(offset))
            temporary.replace(path)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the markers in hand (a worker leaving: gunicorn's worker_exit)."""
        self._stop.set()
        if self.leading:
            self.finish.alarm.ring(0)  # wakes the leader's wait
        if self._thread.is_alive():
            self._thread.join(timeout)
        for each in self.finishes:
            each.alarm.close()


def start_sweeper(finish: Finish, folder: str | None = None,
                  also: Callable[[threading.Event], None] | None = None, *, more: tuple[Finish, ...] = ()) -> Sweeper:
    return Sweeper(finish, folder, also, more=more).start()
