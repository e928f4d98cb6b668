"""An application must not be able to tell pgsluice from PostgreSQL:
startup GUCs honoured (RESET included), server-spelled parameter values,
real backend pid in session mode, FATALs relayed as they are."""
import time

import psycopg
import pytest

from wire import Wire, rows


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_options_statement_timeout_and_reset(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect(params={"options": "-c statement_timeout=1500"}) as c:
        assert c.execute("show statement_timeout").fetchone() == ("1500ms",)
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("select pg_sleep(3)")
        c.execute("set statement_timeout = 5000")
        assert c.execute("show statement_timeout").fetchone() == ("5s",)
        c.execute("reset statement_timeout")
        assert c.execute("show statement_timeout").fetchone() == ("1500ms",)
        c.execute("set statement_timeout = 7000")
        c.execute("reset all")
        assert c.execute("show statement_timeout").fetchone() == ("1500ms",)


@pytest.mark.timeout(30)
def test_double_dash_option(sluice):
    s = sluice()
    with s.connect(params={"options": "--search-path=foo,public"}) as c:
        assert c.execute("show search_path").fetchone() == ("foo,public",)


@pytest.mark.timeout(30)
def test_plain_startup_parameter(sluice):
    s = sluice()
    w = Wire(s.port).login("app", "appdb", search_path="xyz", idle_in_transaction_session_timeout="12345")
    assert rows(w.simple("show search_path")) == [("xyz",)]
    assert rows(w.simple("show idle_in_transaction_session_timeout")) == [("12345ms",)]
    w.close()


@pytest.mark.timeout(30)
def test_clients_with_different_gucs_keep_their_own(sluice):
    s = sluice({"default_pool_size": 2})
    a = s.connect(params={"options": "-c work_mem=1234kB"})
    b = s.connect(params={"options": "-c work_mem=4321kB"})
    for _ in range(5):
        assert a.execute("show work_mem").fetchone() == ("1234kB",)
        assert b.execute("show work_mem").fetchone() == ("4321kB",)
    a.close()
    b.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_client_encoding_spelled_by_server(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect(params={"client_encoding": "utf8"}) as c:
        assert c.info.parameter_status("client_encoding") == "UTF8"
        assert c.execute("show client_encoding").fetchone() == ("UTF8",)


@pytest.mark.timeout(30)
def test_application_name(sluice, pg):
    s = sluice()
    with s.connect(params={"application_name": "billing-worker"}) as c:
        assert c.execute("show application_name").fetchone() == ("billing-worker",)
        assert c.info.parameter_status("application_name") == "billing-worker"


@pytest.mark.timeout(30)
def test_timezone_follows_client_across_servers(sluice):
    s = sluice({"default_pool_size": 1})
    a = s.connect(params={"options": ""}, )
    a.execute("set timezone = 'Asia/Tokyo'")
    b = s.connect()
    assert b.execute("show timezone").fetchone()[0] != "Asia/Tokyo"
    assert a.execute("show timezone").fetchone() == ("Asia/Tokyo",)
    a.close()
    b.close()


@pytest.mark.timeout(30)
def test_session_mode_real_backend_pid(sluice):
    s = sluice({"pool_mode": "session"})
    with s.connect() as c:
        assert c.info.backend_pid == c.execute("select pg_backend_pid()").fetchone()[0]


@pytest.mark.timeout(30)
def test_fatal_relayed_and_connection_closed(sluice, pg):
    s = sluice({"pool_mode": "session"})
    w = Wire(s.port).login("app", "appdb")
    pid = int(rows(w.simple("select pg_backend_pid()"))[0][0])
    assert pid == w.pid
    pg.terminate(pid)
    t, body = w.read_msg(timeout=5)
    assert t == b"E"
    assert b"C57P01\0" in body and b"SFATAL\0" in body
    assert w.closed_within(3)
    assert b"pgsluice" not in body


@pytest.mark.timeout(30)
def test_fatal_with_psycopg(sluice, pg):
    s = sluice({"pool_mode": "session"})
    c = s.connect()
    pg.terminate(c.info.backend_pid)
    time.sleep(0.3)
    with pytest.raises(psycopg.OperationalError) as e:
        c.execute("select 1")
    assert "administrator command" in str(e.value)
    assert c.closed or c.broken
