"""The incident: a "read-only" pool silently wrote. The replica was gone, the
read-only route fell through to the primary, and two code paths wrote
through it for weeks.

With read_only=1 on a database entry, every server connection of that pool
starts with default_transaction_read_only=on (a startup parameter, so it
survives DISCARD ALL and reconnects), whichever host of the entry's list it
reaches: the server itself refuses writes with its own 25006 error."""
import psycopg
import pytest

from helpers import wait_until


def entry(pg, hosts="127.0.0.1", extra=""):
    return f"host={hosts} port={pg.port} dbname=appdb read_only=1 {extra}".strip()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_writes_through_a_read_only_entry_get_postgresqls_own_error(sluice, pg, table, mode):
    pg.sql(f"create table {table} (i int)", db="appdb")
    pg.sql(f"grant all on {table} to app", db="appdb")
    s = sluice({"pool_mode": mode, "default_pool_size": 2},
               databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb",
                          "appdb_ro": entry(pg, "127.0.0.1,localhost")})
    for attempt in range(4):  # fresh clients, reset servers, both hosts of the list
        with s.connect(db="appdb_ro") as c:
            assert c.execute("show default_transaction_read_only").fetchone() == ("on",)
            assert c.execute(f"select count(*) from {table}").fetchone() == (0,)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as e:
                c.execute(f"insert into {table} values ({attempt})")
            assert e.value.sqlstate == "25006"
            assert "read-only transaction" in str(e.value)
            c.execute("discard all")  # what a session-mode reset does
            assert c.execute("show default_transaction_read_only").fetchone() == ("on",)
    # the read-write entry to the same server still writes
    with s.connect(db="appdb") as c:
        c.execute(f"insert into {table} values (42)")
    assert pg.sql(f"select array_agg(i) from {table}", db="appdb") == [([42],)]


@pytest.mark.timeout(60)
def test_read_only_survives_server_replacement(sluice, pg, table):
    pg.sql(f"create table {table} (i int)", db="appdb")
    pg.sql(f"grant all on {table} to app", db="appdb")
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1},
               databases={"appdb_ro": entry(pg)})
    with s.connect(db="appdb_ro") as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
    pg.sql(f"select pg_terminate_backend({pid})")
    # pg_terminate_backend only signals: wait until the backend has sent its
    # FATAL and gone, so the pooler's idle watch, not the next client's
    # query, is what finds the server dead.
    assert wait_until(lambda: pg.sql(f"select count(*) from pg_stat_activity where pid = {pid}") == [(0,)])
    with s.connect(db="appdb_ro") as c:
        assert c.execute("select pg_backend_pid()").fetchone()[0] != pid
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute(f"insert into {table} values (1)")
