"""The basics a user tries first: psql and psycopg through the pooler, in
both pool modes, over TCP and the unix socket, and the admin console's
SHOW VERSION; a server named by host name."""
import datetime
import decimal
import os

import psycopg
import pytest

import pgwire
from helpers import create_table


@pytest.mark.timeout(30)
def test_psql_select_1(sluice):
    s = sluice()
    r = s.psql(["-At", "-c", "select 1"])
    assert r.returncode == 0, f"psql failed: {r.stderr}"
    assert r.stdout.strip() == "1"


@pytest.mark.timeout(30)
def test_psql_with_ssl_prefer_falls_back_to_plain(sluice):
    """psql's default sslmode=prefer sends SSLRequest first; without TLS
    configured the pooler answers 'N' and the login goes on in clear."""
    s = sluice()
    r = s.psql(["-At", "-c", "select current_user"], env={"PGSSLMODE": "prefer"})
    assert r.returncode == 0, f"psql failed: {r.stderr}"
    assert r.stdout.strip() == "app"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_psycopg_query(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
        assert c.execute("select current_user, current_database()").fetchone() == ("app", "appdb")
    with s.connect(autocommit=False) as c:
        c.execute("select 2")
        c.commit()
        assert c.execute("select %s::int * 2", [21]).fetchone() == (42,)
        c.rollback()


@pytest.mark.timeout(30)
def test_query_returns_the_right_rows_and_types(sluice):
    s = sluice()
    with s.connect() as c:
        rows = c.execute("select g, g * 1.5, 'row ' || g, g % 2 = 0, null::text "
                         "from generate_series(1, 1000) g order by g").fetchall()
        assert len(rows) == 1000
        assert rows[0] == (1, decimal.Decimal("1.5"), "row 1", False, None)
        assert rows[-1] == (1000, decimal.Decimal("1500.0"), "row 1000", True, None)
        assert [r[0] for r in rows] == list(range(1, 1001))
        d = c.execute("select date '2024-02-29', 'héllo ✓'::text, '\\x00ff'::bytea").fetchone()
        assert d == (datetime.date(2024, 2, 29), "héllo ✓", b"\x00\xff")
        cur = c.execute("select 1 as one, 'x' as two")
        assert [col.name for col in cur.description] == ["one", "two"]


@pytest.mark.timeout(30)
def test_multi_statement_simple_query(sluice):
    s = sluice()
    with pgwire.connect(s.port) as w:
        r = w.query("select 1; select 2, 3; select 'x' where false")
        assert r.errors == []
        assert r.rows == [("1",), ("2", "3")]
        assert r.tags == ["SELECT 1", "SELECT 1", "SELECT 0"]
        assert r.status == "I"


@pytest.mark.timeout(30)
def test_empty_query(sluice):
    s = sluice()
    with pgwire.connect(s.port) as w:
        r = w.query("")
        assert [t for t, _ in r.messages] == ["I", "Z"], r.messages  # EmptyQueryResponse, ReadyForQuery
        assert w.query_ok("select 5").rows == [("5",)]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_unix_socket_connection(sluice, mode):
    s = sluice({"pool_mode": mode})
    path = s.unix_socket_path()
    assert os.path.exists(path), f"no unix socket at {path}"
    with s.connect(host=s.config["unix_socket_dir"]) as c:
        assert c.execute("select 'via unix'").fetchone() == ("via unix",)
    r = s.psql(["-At", "-c", "select 7"], host=s.config["unix_socket_dir"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "7"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("dbname", ["pgsluice", "pgbouncer"])
def test_show_version_on_admin_console(sluice, dbname):
    s = sluice()
    r = s.psql(["-At", "-c", "SHOW VERSION"], user="postgres", db=dbname)
    assert r.returncode == 0, f"psql failed: {r.stderr}"
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout
    assert "pgsluice" in lines[0].lower()


@pytest.mark.timeout(30)
def test_show_version_with_psycopg(sluice):
    s = sluice()
    with s.connect(user="postgres", db="pgsluice") as c:
        rows = c.execute("SHOW VERSION").fetchall()
    assert len(rows) == 1 and "pgsluice" in str(rows[0][0]).lower(), rows


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_many_short_connections(sluice, mode):
    """Connect, query, disconnect 300 times: nothing accumulates."""
    s = sluice({"pool_mode": mode, "default_pool_size": 2})
    for i in range(300):
        with s.connect() as c:
            assert c.execute("select %s::int", [i]).fetchone() == (i,)
    assert len(s.backends()) <= 2
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
def test_terminate_message_is_clean(sluice):
    """A client that says Terminate frees everything; the pooler lives on."""
    s = sluice({"default_pool_size": 1, "pool_mode": "session"})
    for _ in range(5):
        w = pgwire.connect(s.port)
        assert w.query_ok("select 1").rows == [("1",)]
        w.terminate()
    with s.connect() as c:
        assert c.execute("select 2").fetchone() == (2,)


@pytest.mark.timeout(30)
def test_database_defaults_to_user_name(sluice, pg):
    """No database in the startup packet means database = user, as in
    PostgreSQL (here `postgres`, reached through the `postgres` entry)."""
    s = sluice()
    w = pgwire.Conn.open(s.port)
    try:
        w.startup("postgres", None)
        assert w.query_ok("select current_database()").rows == [("postgres",)]
    finally:
        w.close()


@pytest.mark.timeout(30)
def test_psql_select(sluice):
    s = sluice()
    r = s.psql(["-Atc", "select 40 + 2"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "42"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_psycopg_rows(sluice, mode):
    s = sluice({"pool_mode": mode})
    with s.connect() as c:
        rows = c.execute("select g, g * 2 from generate_series(1, 5) g").fetchall()
        assert rows == [(i, i * 2) for i in range(1, 6)]
        assert c.execute("select current_user, current_database()").fetchone() == ("app", "appdb")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_transactions_commit_and_rollback(sluice, pg, table, mode):
    create_table(pg, table, "a int")
    s = sluice({"pool_mode": mode})
    with s.connect(autocommit=False) as c:
        c.execute(f"insert into {table} values (1)")
        c.commit()
        c.execute(f"insert into {table} values (2)")
        c.rollback()
    assert pg.sql(f"select a from {table}", db="appdb") == [(1,)]


@pytest.mark.timeout(30)
def test_unix_socket(sluice):
    s = sluice()
    with psycopg.connect(host=s.dir, port=s.port, user="app", dbname="appdb", autocommit=True) as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("db", ["pgsluice", "pgbouncer"])
def test_admin_show_version(sluice, db):
    s = sluice()
    r = s.psql(["-Atc", "show version"], user="postgres", db=db)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pgsluice ")


@pytest.mark.timeout(30)
def test_admin_refuses_other_users(sluice):
    s = sluice()
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(user="app", db="pgsluice")
    assert "admin console" in str(e.value)


@pytest.mark.timeout(30)
def test_admin_unknown_command_keeps_session(sluice):
    s = sluice()
    with psycopg.connect(s.dsn("postgres", "pgsluice"), autocommit=True, cursor_factory=psycopg.ClientCursor) as c:
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("show nonsense")
        assert c.execute("show version").fetchone()[0].startswith("pgsluice")


@pytest.mark.timeout(30)
def test_server_host_name_resolved(sluice, pg):
    s = sluice(databases={"byname": f"host=localhost port={pg.port} dbname=appdb",
                          "nowhere": f"host=no-such-host.invalid port={pg.port} dbname=appdb"})
    with s.connect(db="byname") as c:
        assert c.execute("select current_database()").fetchone() == ("appdb",)
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(db="nowhere")
    assert "cannot resolve host" in str(e.value)
