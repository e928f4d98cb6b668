"""The pooler is invisible where PostgreSQL semantics are at stake:
startup parameters are session defaults (RESET included), ParameterStatus
reaches the client, the backend pid is real in session mode, and a
server's FATAL is relayed. (Login errors relayed: see test_errors.py;
abandoned pipelines: see test_client_gone.py.)"""
import time

import psycopg
import pytest

import pgwire
from helpers import Threads, wait_until

MODES = ["transaction", "session"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", MODES)
def test_options_statement_timeout(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect(options="-c statement_timeout=1500") as c:
        assert c.execute("show statement_timeout").fetchone() == ("1500ms",)
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled) as e:
            c.execute("select pg_sleep(3)")
        assert e.value.sqlstate == "57014"
        assert 1.2 < time.monotonic() - t0 < 2.8
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("options,expected", [("--search_path=foo", "foo"),
                                              ("-csearch_path=bar", "bar"),
                                              ("-c search_path=a,b -c work_mem=5MB", "a,b")])
def test_options_forms(sluice, options, expected):
    s = sluice()
    with s.connect(options=options) as c:
        assert c.execute("show search_path").fetchone() == (expected,)
        if "work_mem" in options:
            assert c.execute("show work_mem").fetchone() == ("5MB",)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", MODES)
def test_application_name_startup_parameter(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect(application_name="sluice-test-app") as c:
        assert c.execute("show application_name").fetchone() == ("sluice-test-app",)
        assert c.info.parameter_status("application_name") == "sluice-test-app"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", MODES)
def test_raw_startup_guc(sluice, mode):
    s = sluice({"pool_mode": mode})
    with pgwire.connect(s.port, params={"search_path": "xyz", "work_mem": "3MB"}) as c:
        assert c.query_ok("show search_path").rows == [("xyz",)]
        assert c.query_ok("show work_mem").rows == [("3MB",)]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("reset", ["RESET statement_timeout", "RESET ALL"])
@pytest.mark.parametrize("mode", MODES)
def test_reset_returns_to_startup_value(sluice, mode, reset):
    s = sluice({"pool_mode": mode, "default_pool_size": 1})
    with s.connect(options="-c statement_timeout=1500") as c:
        # separate statements
        c.execute("SET statement_timeout = 5000")
        assert c.execute("show statement_timeout").fetchone() == ("5s",)
        c.execute(reset)
        assert c.execute("show statement_timeout").fetchone() == ("1500ms",)
        # inside one transaction
        c.execute("begin")
        c.execute("SET statement_timeout = 7000")
        c.execute(reset)
        assert c.execute("show statement_timeout").fetchone() == ("1500ms",)
        c.execute("commit")
    # one simple-query string (after the first client left: the pool has one server)
    with pgwire.connect(s.port, params={"options": "-c statement_timeout=1500"}) as w:
        r = w.query_ok(f"SET statement_timeout = 5000; {reset}; SHOW statement_timeout")
        assert r.rows == [("1500ms",)]


@pytest.mark.timeout(60)
def test_clients_with_different_startup_gucs_each_see_their_own(sluice):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "query_wait_timeout": 30})
    a = s.connect(options="-c statement_timeout=1111")
    b = s.connect(options="-c statement_timeout=2222")
    d = s.connect()  # no startup GUC: the server default
    try:
        for _ in range(10):
            assert a.execute("show statement_timeout").fetchone() == ("1111ms",)
            assert b.execute("show statement_timeout").fetchone() == ("2222ms",)
            assert d.execute("show statement_timeout").fetchone() == ("0",)
    finally:
        for x in (a, b, d):
            x.close()

    def work(ms):
        opts = f"-c statement_timeout={ms}" if ms else ""
        with s.connect(options=opts) as c:
            for _ in range(20):
                assert c.execute("show statement_timeout").fetchone() == (f"{ms}ms" if ms else "0",)

    with Threads(join_timeout=45) as th:
        for ms in (0, 1234, 4321, 0, 1234):
            th.start(work, ms)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", MODES)
def test_client_encoding_parameter_status(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect(client_encoding="utf8") as c:
        assert c.info.parameter_status("client_encoding") == "UTF8"
        assert c.execute("select 'héllo ✓'").fetchone() == ("héllo ✓",)
        assert c.info.parameter_status("server_version").startswith("15")
        assert c.info.server_version >= 150000


@pytest.mark.timeout(30)
def test_latin1_and_utf8_clients_share_a_pool(sluice):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "query_wait_timeout": 10})
    latin = s.connect(client_encoding="latin1")
    utf = s.connect(client_encoding="utf8")
    try:
        assert latin.info.parameter_status("client_encoding") == "LATIN1"
        assert utf.info.parameter_status("client_encoding") == "UTF8"
        for _ in range(5):
            assert latin.execute("select 'café', current_setting('client_encoding')").fetchone() == \
                ("café", "LATIN1")
            assert utf.execute("select 'café ✓', current_setting('client_encoding')").fetchone() == \
                ("café ✓", "UTF8")
    finally:
        latin.close()
        utf.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", MODES)
def test_set_sends_parameter_status(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect() as c:
        c.execute("set application_name = 'renamed'")
        assert c.info.parameter_status("application_name") == "renamed"
        c.execute("set timezone = 'Asia/Tokyo'")
        assert c.info.parameter_status("TimeZone") == "Asia/Tokyo"


@pytest.mark.timeout(30)
def test_session_mode_backend_pid_is_real(sluice):
    s = sluice({"pool_mode": "session"})
    with s.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        assert c.info.backend_pid == pid


@pytest.mark.timeout(30)
def test_fatal_from_server_is_relayed_psycopg(sluice, pg):
    """Session mode: the client's backend is terminated; the next query
    fails with PostgreSQL's own message and the connection is closed.
    (libpq reports an asynchronous FATAL without a SQLSTATE, even when
    connected to PostgreSQL directly; the raw test below checks 57P01.)"""
    s = sluice({"pool_mode": "session"})
    c = s.connect()
    try:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        assert pg.terminate(pid)
        assert wait_until(lambda: pid not in [b.pid for b in pg.backends()], timeout=5)
        time.sleep(0.2)
        with pytest.raises(psycopg.OperationalError) as e:
            c.execute("select 1")
        assert "terminating connection due to administrator command" in str(e.value), str(e.value)
        assert c.closed or c.broken
    finally:
        c.close()
    with s.connect() as c2:
        assert c2.execute("select 'others fine'").fetchone() == ("others fine",)


@pytest.mark.timeout(30)
def test_fatal_from_server_is_relayed_raw(sluice, pg):
    s = sluice({"pool_mode": "session"})
    c = pgwire.connect(s.port)
    try:
        pid = int(c.query_ok("select pg_backend_pid()").rows[0][0])
        assert pg.terminate(pid)
        msgs = c.wait_closed(timeout=5)
        errors = [pgwire.parse_error(p) for t, p in msgs if t == "E"]
        assert errors, f"no ErrorResponse before the close: {msgs}"
        assert errors[0]["C"] == "57P01" and errors[0]["V"] == "FATAL", errors
        assert "terminating connection due to administrator command" in errors[0]["M"]
    finally:
        c.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_options_statement_timeout_and_reset(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect(options="-c statement_timeout=1500") as c:
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
    with s.connect(options="--search-path=foo,public") as c:
        assert c.execute("show search_path").fetchone() == ("foo,public",)


@pytest.mark.timeout(30)
def test_plain_startup_parameter(sluice):
    s = sluice()
    w = pgwire.connect(s.port, params={"search_path": "xyz", "idle_in_transaction_session_timeout": "12345"},
                       timeout=10)
    assert w.query("show search_path").rows == [("xyz",)]
    assert w.query("show idle_in_transaction_session_timeout").rows == [("12345ms",)]
    w.close()


@pytest.mark.timeout(30)
def test_clients_with_different_gucs_keep_their_own(sluice):
    s = sluice({"default_pool_size": 2})
    a = s.connect(options="-c work_mem=1234kB")
    b = s.connect(options="-c work_mem=4321kB")
    for _ in range(5):
        assert a.execute("show work_mem").fetchone() == ("1234kB",)
        assert b.execute("show work_mem").fetchone() == ("4321kB",)
    a.close()
    b.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_client_encoding_spelled_by_server(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect(client_encoding="utf8") as c:
        assert c.info.parameter_status("client_encoding") == "UTF8"
        assert c.execute("show client_encoding").fetchone() == ("UTF8",)


@pytest.mark.timeout(30)
def test_application_name(sluice, pg):
    s = sluice()
    with s.connect(application_name="billing-worker") as c:
        assert c.execute("show application_name").fetchone() == ("billing-worker",)
        assert c.info.parameter_status("application_name") == "billing-worker"


@pytest.mark.timeout(30)
def test_timezone_follows_client_across_servers(sluice):
    s = sluice({"default_pool_size": 1})
    a = s.connect(options="")
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
    w = pgwire.connect(s.port, timeout=10)
    pid = int(w.query("select pg_backend_pid()").rows[0][0])
    assert pid == w.pid
    pg.terminate(pid)
    t, body = w.recv_msg(timeout=5)
    assert t == "E"
    assert b"C57P01\0" in body and b"SFATAL\0" in body
    assert w.is_closed(3)
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
