"""SIGHUP: new pools appear, sizes change, nobody is dropped; a bad file
is refused and the old configuration keeps working."""
import time

import pytest

from coreutil import wait_until


@pytest.mark.timeout(30)
def test_reload_adds_database_and_keeps_clients(sluice, pg):
    s = sluice(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"})
    c = s.connect()
    assert c.execute("select 1").fetchone() == (1,)
    with pytest.raises(Exception):
        s.connect(db="newdb")
    s.rewrite(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb",
                         "newdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"})
    s.reload()
    s.wait_log(r"reload done")
    with s.connect(db="newdb") as n:
        assert n.execute("select current_database()").fetchone() == ("appdb",)
    assert c.execute("select 2").fetchone() == (2,)
    c.close()


@pytest.mark.timeout(30)
def test_reload_grows_pool(sluice, pg):
    s = sluice({"default_pool_size": 2, "query_wait_timeout": 1})
    conns = [s.connect(autocommit=False) for _ in range(4)]
    conns[0].execute("select 1")
    conns[1].execute("select 1")
    with pytest.raises(Exception):
        conns[2].execute("select 1")
    conns[2].rollback()
    s.rewrite(config={"default_pool_size": 4})
    s.reload()
    s.wait_log(r"reload done")
    conns[2].execute("select 1")
    conns[3].execute("select 1")
    assert len(pg.backends(user="app", db="appdb")) == 4
    for c in conns:
        c.close()


@pytest.mark.timeout(30)
def test_bad_reload_keeps_old_config(sluice):
    s = sluice()
    c = s.connect()
    s.rewrite(config={"default_pool_size": "lots"})
    s.reload()
    s.wait_log(r"reload failed")
    assert c.execute("select 1").fetchone() == (1,)
    with s.connect() as d:
        assert d.execute("select 2").fetchone() == (2,)
    c.close()
