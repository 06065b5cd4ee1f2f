"""signer/service/sweeping.py: one sweeper per replica folder (a flock), handed over when the leader
stops; a worker's datagram wakes the leader; followers take the leader's store clock. The store here
is a counting proxy to nothing (every LIST fails at once), so only the schedule is exercised."""

from __future__ import annotations

import time
from pathlib import Path

from signer import Bucket, Credentials
from signer.service.finish import Finish
from signer.service.sweeping import Sweeper
from tests.servers import free_port


def finish_at(endpoint: str) -> Finish:
    credentials = Credentials("AKIDEXAMPLE", "secret")
    return Finish(lambda: credentials, Bucket("bucket", "us-east-1", endpoint, "path"), "uploads/", timeout=1.0,
                  interval=1)


def wait_for(condition, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_one_worker_of_a_replica_sweeps_and_another_takes_over_when_it_stops(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: each sweep fails and is logged
    sweepers = [Sweeper(finish_at(endpoint), str(tmp_path)).start() for _ in range(3)]
    try:
        assert wait_for(lambda: sum(s.leading for s in sweepers) == 1)
        time.sleep(1.5)
        assert sum(s.leading for s in sweepers) == 1
        leader = next(s for s in sweepers if s.leading)
        leader.stop()
        rest = [s for s in sweepers if s is not leader]
        assert wait_for(lambda: sum(s.leading for s in rest) == 1, 3.0)  # within a second or so
    finally:
        for sweeper in sweepers:
            sweeper.stop()
            sweeper.finish.alarm.close()


def test_a_marker_written_in_any_worker_wakes_the_leader(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    leader = Sweeper(finish_at(endpoint), str(tmp_path))
    received: list[int | None] = []
    original = leader._receive

    def spy(timeout: float) -> int | None:
        due = original(timeout)
        received.append(due)
        return due

    leader._receive = spy  # type: ignore[method-assign]
    leader.start()
    writer = finish_at(endpoint)
    Sweeper(writer, str(tmp_path))  # another worker of the replica: its alarm rings the leader's socket
    try:
        assert wait_for(lambda: leader.leading)
        time.sleep(0.3)
        writer.alarm.ring(1_900_000_000)
        assert wait_for(lambda: 1_900_000_000 in received)
    finally:
        leader.stop()
        writer.alarm.close()


def test_followers_take_the_leaders_reading_of_the_store_clock(tmp_path: Path) -> None:
    (tmp_path / "clock").write_text("-120")
    follower_finish = finish_at(f"http://127.0.0.1:{free_port()}")
    follower = Sweeper(follower_finish, str(tmp_path))
    follower._follow()
    assert follower_finish.clock.offset == -120
    follower_finish.alarm.close()
