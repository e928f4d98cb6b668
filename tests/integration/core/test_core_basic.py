"""Plain use through pgsluice: psql, psycopg in both modes, unix socket,
the admin console's SHOW VERSION."""
import psycopg
import pytest


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
def test_transactions_commit_and_rollback(sluice, pg, mode):
    pg.sql("drop table if exists t_basic_tx; create table t_basic_tx(a int)", db="appdb")
    pg.sql("grant all on t_basic_tx to app", db="appdb")
    s = sluice({"pool_mode": mode})
    with s.connect(autocommit=False) as c:
        c.execute("insert into t_basic_tx values (1)")
        c.commit()
        c.execute("insert into t_basic_tx values (2)")
        c.rollback()
    assert pg.sql("select a from t_basic_tx", db="appdb") == [(1,)]


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
