"""reserve_pool_size / reserve_pool_timeout: while the head of a pool's
queue has waited reserve_pool_timeout, the pool opens extra connections
(one per janitor round) up to pool_size + reserve_pool_size; they serve
the queue and are closed once released with nobody waiting."""
import threading
import time

import pytest

from helpers import wait_until


@pytest.mark.timeout(60)
def test_reserve_connections_serve_a_stuck_queue_then_close(sluice, pg):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 2, "reserve_pool_size": 2,
                "reserve_pool_timeout": "500ms", "query_wait_timeout": 10})
    holders = [s.connect() for _ in range(2)]
    threads = [threading.Thread(target=h.execute, args=("select pg_sleep(4)",)) for h in holders]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(s.backends(state="active")) == 2, timeout=5)
    took = []

    def waiter():
        t0 = time.monotonic()
        with s.connect() as c:
            c.execute("select 1")
        took.append(time.monotonic() - t0)

    waiters = [threading.Thread(target=waiter) for _ in range(2)]
    for t in waiters:
        t.start()
    for t in waiters:
        t.join(10)
    assert len(took) == 2 and max(took) < 3.0, took  # not behind the 4 s holders
    assert min(took) >= 0.4, took  # not before reserve_pool_timeout
    s.wait_log(r"WARNING pool app/appdb: opening a reserve connection \(\d of pool_size 2 \+ reserve_pool_size 2\): "
               r"a client has waited [0-9.]+s")
    assert len(s.backends()) <= 4
    for t in threads:
        t.join(10)
    for h in holders:
        h.close()
    # nobody waits any more: the pool goes back to its size
    assert wait_until(lambda: len(s.backends()) <= 2, timeout=5), s.backends()
