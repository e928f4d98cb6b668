"""Large results and COPY stream through with bounded memory; the extended
protocol works in transaction mode; named prepared statements fail cleanly."""
import threading
import time

import psycopg
import pytest


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_100mb_result(sluice, mode):
    s = sluice({"pool_mode": mode})
    before = peak_rss_kb(s.proc.pid)
    with s.connect() as c:
        cur = c.cursor()
        n = total = 0
        cur.execute("select repeat('x', 1000) from generate_series(1, 100000)")
        for (v,) in cur:
            n += 1
            total += len(v)
    assert n == 100000 and total == 100_000_000
    assert peak_rss_kb(s.proc.pid) - before < 64 * 1024


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_copy_out_and_in_100mb(sluice, pg, mode):
    table = f"t_copy_{mode}"
    pg.sql(f"drop table if exists {table}; create table {table}(a int, b text); grant all on {table} to app",
           db="appdb")
    s = sluice({"pool_mode": mode})
    before = peak_rss_kb(s.proc.pid)
    chunks = []
    with s.connect() as c:
        with c.cursor().copy("copy (select g, repeat('y', 1000) from generate_series(1, 100000) g) to stdout") as cp:
            size = 0
            for data in cp:
                size += len(data)
                if len(chunks) < 1:
                    chunks.append(bytes(data))
        assert size > 100_000_000
        line = b"7\t" + b"z" * 1000 + b"\n"
        with c.cursor().copy(f"copy {table} from stdin") as cp:
            for _ in range(100):
                cp.write(line * 1000)
        assert c.execute(f"select count(*) from {table}").fetchone() == (100000,)
    assert peak_rss_kb(s.proc.pid) - before < 64 * 1024


@pytest.mark.timeout(60)
def test_extended_protocol_transaction_mode(sluice):
    s = sluice({"default_pool_size": 2})
    with s.connect() as c:
        for i in range(50):
            assert c.execute("select %s::int + %s::int", [i, 1]).fetchone() == (i + 1,)


@pytest.mark.timeout(60)
def test_pipeline_mode(sluice):
    s = sluice({"default_pool_size": 1})
    with s.connect() as c:
        with c.pipeline():
            curs = [c.execute("select %s::int", [i]) for i in range(10)]
        assert [cur.fetchone()[0] for cur in curs] == list(range(10))


@pytest.mark.timeout(60)
def test_named_prepared_statement_fails_cleanly(sluice):
    s = sluice({"default_pool_size": 1})
    c = s.connect(autocommit=False, prepare_threshold=5)
    other = s.connect()
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        c.execute("select %s::int", [1], prepare=True)
    assert "prepared statement" in str(e.value)
    c.rollback()
    assert c.execute("select %s::int", [2]).fetchone() == (2,)
    c.commit()
    assert other.execute("select 3").fetchone() == (3,)
    c.close()
    other.close()


@pytest.mark.timeout(60)
def test_prepared_statements_work_in_session_mode(sluice):
    s = sluice({"pool_mode": "session"})
    with s.connect(prepare_threshold=0) as c:
        for i in range(10):
            assert c.execute("select %s::int", [i]).fetchone() == (i,)


@pytest.mark.timeout(60)
def test_concurrent_large_results_do_not_block_others(sluice):
    s = sluice({"default_pool_size": 4})
    done = []

    def big():
        with s.connect() as c:
            done.append(len(c.execute("select repeat('x', 1000) from generate_series(1, 20000)").fetchall()))

    threads = [threading.Thread(target=big) for _ in range(3)]
    for t in threads:
        t.start()
    with s.connect() as c:
        t0 = time.time()
        assert c.execute("select 1").fetchone() == (1,)
    for t in threads:
        t.join(30)
    assert done == [20000] * 3
