"""The incident: liveness checks (`SELECT 1` with autocommit off) opened
transactions and left their connections idle in transaction.

pgsluice's own queries (checks, resets, ROLLBACK on release) never leave
state behind: a check runs in autocommit as a simple query, and a check
that leaves a transaction open anyway is a failed check whose server is
closed. Whatever clients did, pg_stat_activity shows nothing idle in
transaction afterwards."""
import time

import pytest

from helpers import wait_until


def served(s, sql="select 1"):
    with s.connect() as c:
        return c.execute(sql).fetchone()


def idle_in_transaction(pg):
    return [b for b in pg.backends() if b.state == "idle in transaction"]


@pytest.mark.timeout(60)
def test_checks_leave_no_transaction_behind(sluice, pg):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 3, "server_check_delay": 0, "verbose": 1})
    for i in range(20):
        assert served(s, f"select {i}") == (i,)
        assert not idle_in_transaction(pg), pg.backends()
    # the checks did run (delay 0: every checkout of an idle server)
    assert s.log().count("checking with server_check_query") >= 10


@pytest.mark.timeout(60)
def test_a_check_that_opens_a_transaction_fails_and_is_closed(sluice, pg):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 2, "server_check_delay": 0,
                "server_check_query": "begin"})
    first = served(s, "select pg_backend_pid()")[0]
    t0 = time.monotonic()
    assert served(s, "select 'served'") == ("served",)
    assert time.monotonic() - t0 < 3.0
    s.wait_log(r"server_check_query left a transaction open")
    assert wait_until(lambda: first not in [b.pid for b in pg.backends()], timeout=3), pg.backends()
    assert wait_until(lambda: not idle_in_transaction(pg), timeout=3), pg.backends()


@pytest.mark.timeout(60)
def test_clients_that_leave_transactions_open_leave_nothing_behind(sluice, pg):
    """The same duty seen from the client side: autocommit off, a read, and
    the connection dropped; the pooler's ROLLBACK cleans up."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 2})
    for _ in range(6):
        c = s.connect(autocommit=False)
        c.execute("select 1")
        c.close()
    assert wait_until(lambda: not idle_in_transaction(pg), timeout=3), pg.backends()
