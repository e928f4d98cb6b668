"""The incident: a server side that closes pooled connections under the
pooler (pg_terminate_backend() of every backend, as a DBA or a failover
script does), after which the pool keeps handing out dead connections and
its count of servers no longer matches the server's.

What pgsluice must do: idle server sockets are watched, so idle servers
that die are dropped at once and replaced without any client seeing an
error; a client whose in-use server was killed gets the server's own
FATAL text, and its next connection works; afterwards the pooler's count
of its servers equals what pg_stat_activity shows.
"""
import threading
import time

import psycopg
import pytest

from helpers import Threads, metric, wait_until
from incident_helpers import assert_counts_agree, http_config, metrics, not_idle_in_transaction, pool_row

POOL = 5
KILLED_TEXT = "terminating connection due to administrator command"


def warm(s, n):
    """n servers opened and left idle in the pool (n clients at once)."""
    barrier = threading.Barrier(n, timeout=10)

    def one():
        with s.connect() as c:
            with c.transaction():
                c.execute("select 1")
                barrier.wait()  # all n inside a transaction at once: n distinct servers

    with Threads(join_timeout=20) as th:
        for _ in range(n):
            th.start(one)
    assert wait_until(lambda: len(s.backends(state="idle")) == n, timeout=5), s.backends()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_every_backend_terminated(sluice, pg, mode):
    s = sluice(http_config(pool_mode=mode, default_pool_size=POOL, query_wait_timeout="5s"))
    warm(s, POOL)
    # two clients use a server when the kill comes: one idle inside a transaction, one running a query
    in_txn = s.connect(application_name="in-txn")
    in_txn.execute("begin")
    in_txn.execute("select 'mine'")
    running = s.connect(application_name="running")
    running_err = {}

    def long_query():
        try:
            running.execute("select pg_sleep(20) /* running when killed */")
        except psycopg.Error as e:
            running_err["e"] = e

    th = threading.Thread(target=long_query, daemon=True)
    th.start()
    assert wait_until(lambda: [b for b in s.backends() if "running when killed" in (b.query or "")
                               and b.state == "active"], timeout=5)
    victims = s.backends()
    assert len(victims) == POOL, victims
    idle = [b.pid for b in victims if b.state == "idle"]
    assert len(idle) == POOL - 2
    dead_before = metric(metrics(s), "pgsluice_dead_servers_total", database="appdb", user="app")

    t_kill = time.monotonic()
    for b in victims:
        assert pg.terminate(b.pid)
    assert wait_until(lambda: not [b for b in pg.backends() if b.pid in {v.pid for v in victims}], timeout=5)
    # the idle ones are seen dead at once: the pooler was watching them
    assert wait_until(lambda: metric(metrics(s), "pgsluice_dead_servers_total", database="appdb", user="app")
                      - dead_before == len(idle), timeout=2), metrics(s)
    noticed = time.monotonic() - t_kill

    # a burst of new clients: none sees an error; the pool opens fresh servers
    errors = []

    def client(i):
        try:
            with s.connect() as c:
                assert c.execute("select %s::int", [i]).fetchone() == (i,)
        except psycopg.Error as e:
            errors.append(e)

    with Threads(join_timeout=30) as th2:
        for i in range(20):
            th2.start(client, i)
    assert not errors, f"{len(errors)} clients saw errors after the kill: {errors[:3]}"

    # the running query's client got PostgreSQL's own FATAL
    th.join(10)
    assert "e" in running_err, "the client whose query was running got no error"
    assert KILLED_TEXT in str(running_err["e"]), str(running_err["e"])
    # the client idle in a transaction learns it on its next statement
    with pytest.raises(psycopg.OperationalError) as e:
        in_txn.execute("select 'after the kill'")
    assert KILLED_TEXT in str(e.value), str(e.value)
    for c in (in_txn, running):
        assert c.closed or c.broken
        c.close()
    # and their next connection works
    with s.connect(application_name="in-txn") as c:
        assert c.execute("select 'again'").fetchone() == ("again",)

    assert not not_idle_in_transaction(s)
    n = assert_counts_agree(s)
    assert 1 <= n <= POOL
    assert not {b.pid for b in s.backends()} & {v.pid for v in victims}
    p = pool_row(s)
    assert p["cl_waiting"] == 0 and p["sv_login"] == 0, p
    print(f"\n{mode}: {len(victims)} backends terminated ({len(idle)} idle noticed within {noticed * 1000:.0f} ms), "
          f"20 new clients without error; killed in-use clients got '{KILLED_TEXT}'; {n} servers afterwards, "
          f"pg_stat_activity agrees")
