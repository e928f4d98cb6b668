"""The incident: a liveness check on every checkout hung on a dead socket and
each one waited the whole pool timeout, so every 503 took exactly 10 s.

pgsluice checks a server that sat idle longer than server_check_delay,
bounds the check by server_check_timeout, closes a server that does not
answer and serves the waiting client from the next healthy (or a new)
server. Reproduced with a PostgreSQL backend frozen by SIGSTOP and with a
relay that goes silent without closing; the cost to a client stays near
server_check_timeout and the dead server is named in the log and counted."""
import os
import signal
import time

import pytest

from faults import Relay
from helpers import free_port, metric, wait_until
from incident_helpers import metrics


def timed_query(s, sql="select 1"):
    t0 = time.monotonic()
    with s.connect(connect_timeout=10) as c:
        row = c.execute(sql).fetchone()
    return time.monotonic() - t0, row


@pytest.mark.timeout(90)
def test_frozen_backend_costs_a_client_about_the_check_timeout(sluice, pg):
    http = free_port()
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "server_check_delay": 0,
                "server_check_timeout": "1s", "query_wait_timeout": 20, "http_port": http})
    _, row = timed_query(s, "select pg_backend_pid()")
    frozen = row[0]
    os.kill(frozen, signal.SIGSTOP)
    try:
        took, row = timed_query(s, "select pg_backend_pid()")
        assert row[0] != frozen
        # the check's second, plus a new login; generous for ASan on a busy machine
        assert took < 4.0, f"a client waited {took:.2f}s behind a frozen backend"
        print(f"\nfrozen backend: the client waited {took:.2f}s (server_check_timeout=1s)")
        s.wait_log(r"no answer to server_check_query within server_check_timeout=1\.0s: the connection is dead")
        assert metric(metrics(s), "pgsluice_dead_servers_total", required=True, database="appdb", user="app") >= 1
        # the next clients are served at the usual pace from the healthy server
        worst = max(timed_query(s)[0] for _ in range(5))
        assert worst < 1.0, worst
        assert len(s.backends()) == 1, s.backends()
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert wait_until(lambda: frozen not in [b.pid for b in pg.backends()], timeout=5)


@pytest.mark.timeout(90)
def test_socket_gone_silent_is_closed_and_replaced(sluice):
    relay = None
    try:
        s = sluice(start=False)
        relay = Relay(s.pg.port)
        s.databases["appdb"] = f"host=127.0.0.1 port={relay.port} dbname=appdb"
        s.config.update({"pool_mode": "transaction", "default_pool_size": 2, "server_check_delay": "0",
                         "server_check_timeout": "1s", "query_wait_timeout": "20"})
        s.start()
        timed_query(s)
        assert relay.silence() == 1
        took, row = timed_query(s, "select 'through a new connection'")
        assert row == ("through a new connection",)
        assert took < 4.0, f"a client waited {took:.2f}s behind a silent socket"
        print(f"\nsilent socket: the client waited {took:.2f}s (server_check_timeout=1s)")
        s.wait_log(r"no answer to server_check_query")
    finally:
        if relay:
            relay.close()


@pytest.mark.timeout(60)
def test_checks_wait_their_turn_only_when_idle_long_enough(sluice, pg):
    """With the default server_check_delay a busy server is not checked per
    checkout: the check is for servers idle long enough to be suspect."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "server_check_delay": "1s", "verbose": 1})
    for _ in range(5):
        timed_query(s)
    assert "checking with server_check_query" not in s.log()
    time.sleep(1.3)
    timed_query(s)
    s.wait_log(r"checking with server_check_query after [0-9.]+s idle")
