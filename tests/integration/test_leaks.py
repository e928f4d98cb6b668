"""Who holds a server idle in a transaction: SHOW LEAKS and one WARNING
line past leak_warn_timeout; idle_transaction_timeout then rolls the
server back and returns it to the pool, and the client learns why (25P03,
ReadyForQuery 'E') and recovers with ROLLBACK."""
import re
import time

import psycopg
import pytest

import pgwire
from helpers import wait_until


def leaks(s):
    with s.connect(user="postgres", db="pgsluice") as c:
        cur = c.execute("SHOW LEAKS")
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


@pytest.mark.timeout(60)
def test_leak_is_listed_and_warned_once_then_rolled_back_with_25P03(sluice, pg):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "leak_warn_timeout": "500ms",
                "idle_transaction_timeout": "2500ms"})
    c = s.connect(application_name="orders-api")
    try:
        c.execute("begin")
        c.execute("select 'forgotten' as leaked_statement")
        backend = s.backends(state="idle in transaction")
        assert len(backend) == 1
        pid = backend[0].pid
        # listed once held past leak_warn_timeout
        rows = wait_until(lambda: leaks(s), timeout=3)
        assert rows and len(rows) == 1, rows
        r = rows[0]
        assert r["application_name"] == "orders-api" and r["user"] == "app" and r["database"] == "appdb"
        assert r["xact_state"] == "in transaction" and float(r["idle_for"]) >= 0.5
        assert "forgotten" in r["last_statement"] and r["server_pid"] == pid
        m = s.wait_log(r"WARNING C-\d+ appdb/app@127\.0\.0\.1:\d+: leak: application_name=orders-api holds server "
                       r"S-\d+ \(backend \d+\) idle in transaction for [0-9.]+s.*last statement: select 'forgotten'")
        assert m
        # rolled back at the timeout; the server goes back to the pool, it is not closed
        assert wait_until(lambda: not s.backends(state="idle in transaction"), timeout=4)
        s.wait_log(r"idle_transaction_timeout: application_name=orders-api idle in transaction for [0-9.]+s "
                   r"\(limit 2\.5s\)")
        assert len(re.findall(r": leak: ", s.log())) == 1, "the leak is reported once"
        assert [b.pid for b in pg.backends() if b.pid == pid], "the server connection was closed, not returned"
        with s.connect() as other:  # the pool of one serves others at once, on the same backend
            assert other.execute("select pg_backend_pid()").fetchone() == (pid,)
        with pytest.raises(psycopg.Error) as e:
            c.execute("select 'after the timeout'")
        assert e.value.sqlstate == "25P03", e.value
        assert "idle_transaction_timeout=2.5s" in str(e.value) and "idle for" in str(e.value)
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.Error) as e:  # still aborted until the client ends it
            c.execute("select 1")
        assert e.value.sqlstate == "25P03"
        c.execute("rollback")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c.execute("select 'works again'").fetchone() == ("works again",)
        assert leaks(s) == []
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_aborted_client_on_the_wire_gets_E_then_recovers(sluice):
    """The raw protocol view: ERROR 25P03 then ReadyForQuery 'E' for simple
    and extended queries; ROLLBACK answers 'ROLLBACK' and 'I'."""
    s = sluice({"idle_transaction_timeout": "1s", "default_pool_size": 1})
    c = pgwire.connect(s.port)
    try:
        assert c.query_ok("begin").status == "T"
        time.sleep(1.6)
        r = c.query("select 1", timeout=5)
        assert [e.get("C") for e in r.errors] == ["25P03"] and r.status == "E", r
        r = c.extended("select 2")
        assert [t for t, _ in r.messages] == ["E", "Z"] and r.status == "E", r.messages
        r = c.query("ROLLBACK;", timeout=5)
        assert r.errors == [] and r.status == "I" and r.tags == ["ROLLBACK"], r
        r = c.query_ok("select 3")
        assert r.rows == [("3",)]
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_session_mode_idle_holder_is_a_leak_but_is_not_rolled_back(sluice):
    s = sluice({"pool_mode": "session", "default_pool_size": 2, "leak_warn_timeout": "300ms",
                "idle_transaction_timeout": "1s"})
    with s.connect(application_name="cron-job") as c:
        c.execute("select 'session idle'")
        rows = wait_until(lambda: leaks(s), timeout=3)
        assert rows and rows[0]["application_name"] == "cron-job" and rows[0]["xact_state"] == "idle"
        time.sleep(1.3)  # idle, not in a transaction: idle_transaction_timeout does not apply
        assert c.execute("select 'still linked'").fetchone() == ("still linked",)
        assert "idle_transaction_timeout:" not in s.log()


@pytest.mark.timeout(60)
def test_leak_counts_in_metrics_and_stats_log(sluice):
    from helpers import free_port
    import urllib.request
    port = free_port()
    s = sluice({"leak_warn_timeout": "300ms", "idle_transaction_timeout": "1s", "http_port": port,
                "stats_log_period": "1s"})
    with s.connect() as c:
        c.execute("begin")
        c.execute("select 1")
        s.wait_log(r"idle_transaction_timeout:", timeout=5)
        with pytest.raises(psycopg.Error):
            c.execute("select 1")
        c.execute("rollback")
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert re.search(r'^pgsluice_leak_warnings_total\{database="appdb",user="app"\} 1$', text, re.M), text
    assert re.search(r'^pgsluice_timeouts_total\{database="appdb",user="app",kind="idle_transaction_timeout"\} 1$',
                     text, re.M)
    s.wait_log(r"INFO stats app/appdb: clients active=\d+ idle=\d+ waiting=\d+; servers active=\d+ idle=\d+ "
               r"used=\d+ login=\d+ pool_size=\d+; max_wait=[0-9.]+s xact/s=[0-9.]+ worst_hold=[0-9.]+s; "
               r"wait_timeouts=0 leak_warnings=1", timeout=4)
