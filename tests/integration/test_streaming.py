"""Large results and COPY stream through with bounded memory (DESIGN.md,
"Streaming, not buffering"); the extended protocol and pipelining work in
transaction mode; named prepared statements in transaction mode fail
clearly without harming anyone.

Memory: the pooler's peak RSS (VmHWM) must stay below 64 MB while 100 MB
pass through. Under ASan/TSan the sanitizer's own memory is not ours, so
there the bound is 64 MB above the RSS right after start, with ASan's
quarantine of freed memory kept small."""
import os
import threading
import time

import psycopg
import pytest

import pgwire
from helpers import Threads, create_table

MB = 1024
LIMIT_KB = 64 * MB
ROWS = 100_000
BIG_QUERY = f"select repeat('x', 1000) from generate_series(1, {ROWS})"


def small_quarantine_env():
    base = os.environ.get("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    return {"ASAN_OPTIONS": base + ":quarantine_size_mb=8:thread_local_quarantine_size_kb=256"}


def start_measured(sluice, overrides=None):
    s = sluice(overrides or {}, env=small_quarantine_env())
    baseline = s.rss_kb()
    limit = LIMIT_KB + baseline if s.is_sanitized() else LIMIT_KB
    return s, limit


def assert_bounded(s, limit_kb, what):
    peak = s.peak_rss_kb()
    assert peak < limit_kb, (f"pgsluice peak RSS {peak / MB:.1f} MB after {what} "
                             f"(limit {limit_kb / MB:.1f} MB): it buffers instead of streaming")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_100mb_result(sluice, mode):
    s, limit = start_measured(sluice, {"pool_mode": mode})
    n = total = 0
    with s.connect() as c:
        for (v,) in c.cursor().stream(BIG_QUERY):
            n += 1
            total += len(v)
        assert c.execute("select 'after'").fetchone() == ("after",)
    assert n == ROWS and total == ROWS * 1000
    assert_bounded(s, limit, "a 100 MB result")


@pytest.mark.timeout(120)
def test_stalled_reader_does_not_make_the_pooler_buffer(sluice):
    """The client stops reading for 3 s while 100 MB are on their way:
    the pooler must stop reading from the server, not hold the rest."""
    s, limit = start_measured(sluice)
    c = pgwire.connect(s.port)
    try:
        c.send(pgwire.query(BIG_QUERY))
        time.sleep(3)
        assert_bounded(s, limit, "3 s of a stalled 100 MB result")
        rows = 0
        while True:
            t, payload = c.recv_msg(timeout=30)
            if t == "D":
                rows += 1
            elif t == "E":
                pytest.fail(f"error mid-result: {pgwire.parse_error(payload)}")
            elif t == "Z":
                break
        assert rows == ROWS
        assert c.query_ok("select 1").rows == [("1",)]
    finally:
        c.close()
    assert_bounded(s, limit, "a stalled 100 MB result")


@pytest.mark.timeout(120)
def test_80mb_single_row_is_streamed(sluice):
    """One DataRow of 80 MB: framing must forward it in pieces."""
    s, limit = start_measured(sluice)
    c = pgwire.connect(s.port)
    try:
        c.send(pgwire.query("select repeat('y', 80 * 1024 * 1024) as big"))
        time.sleep(1)
        msgs = []
        while True:
            t, payload = c.recv_msg(timeout=60)
            msgs.append((t, len(payload)))
            if t == "Z":
                break
        types = [t for t, _ in msgs]
        assert types == ["T", "D", "C", "Z"], msgs
        assert msgs[1][1] == 2 + 4 + 80 * 1024 * 1024
    finally:
        c.close()
    assert_bounded(s, limit, "an 80 MB row")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_copy_out_100mb(sluice, mode):
    s, limit = start_measured(sluice, {"pool_mode": mode})
    size = lines = 0
    with s.connect() as c:
        with c.cursor().copy(f"copy ({BIG_QUERY}) to stdout") as cp:
            for data in cp:
                size += len(data)
                lines += bytes(data).count(b"\n")
        assert c.execute("select 'after copy'").fetchone() == ("after copy",)
    assert lines == ROWS and size == ROWS * 1001
    assert_bounded(s, limit, "COPY OUT of 100 MB")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_copy_in_100mb(sluice, pg, table, mode):
    create_table(pg, table, "i int, t text")
    s, limit = start_measured(sluice, {"pool_mode": mode})
    payload = "z" * 1000
    with s.connect() as c:
        with c.cursor().copy(f"copy {table} from stdin") as cp:
            for chunk in range(100):
                cp.write("".join(f"{chunk * 1000 + i}\t{payload}\n" for i in range(1000)))
        assert c.execute(f"select count(*), sum(length(t)), count(distinct i) from {table}").fetchone() == \
            (ROWS, ROWS * 1000, ROWS)
    assert_bounded(s, limit, "COPY IN of 100 MB")


@pytest.mark.timeout(60)
def test_extended_protocol_parameters_in_transaction_mode(sluice):
    s = sluice({"default_pool_size": 2})

    def work(k):
        with s.connect() as c:
            for i in range(50):
                row = c.execute("select %s::int + %s::int, %s::text, %s::bytea, %s::int is null",
                                [i, k, f"client {k}", bytes([k, i]), None]).fetchone()
                assert row == (i + k, f"client {k}", bytes([k, i]), True)

    with Threads(join_timeout=45) as th:
        for k in range(4):
            th.start(work, k)


@pytest.mark.timeout(60)
def test_extended_protocol_inside_transactions(sluice, pg, table):
    create_table(pg, table)
    s = sluice({"default_pool_size": 1})
    with s.connect(autocommit=False) as c:
        for i in range(10):
            c.execute(f"insert into {table} values (%s)", [i])
            if i % 2:
                c.commit()
            else:
                c.rollback()
        assert c.execute(f"select array_agg(i order by i) from {table}").fetchone() == ([1, 3, 5, 7, 9],)
        c.rollback()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_pipeline_mode(sluice, mode):
    s = sluice({"pool_mode": mode, "default_pool_size": 1})
    with s.connect() as c:
        with c.pipeline():
            curs = [c.execute("select %s::int * 2, %s::text", [i, f"q{i}"]) for i in range(20)]
        assert [cur.fetchone() for cur in curs] == [(i * 2, f"q{i}") for i in range(20)]
        with c.pipeline() as p:
            a = c.execute("select 1")
            p.sync()
            b = c.execute("select 2")
        assert a.fetchone() == (1,) and b.fetchone() == (2,)


@pytest.mark.timeout(60)
def test_two_clients_pipelining_on_one_server(sluice):
    """Interleaved pipelines on a pool of one: each client gets its own
    results, in order, never the other's."""
    s = sluice({"default_pool_size": 1, "query_wait_timeout": 30})

    def work(k):
        with s.connect() as c:
            for rnd in range(10):
                with c.pipeline():
                    curs = [c.execute("select %s::text", [f"{k}-{rnd}-{i}"]) for i in range(10)]
                got = [cur.fetchone()[0] for cur in curs]
                assert got == [f"{k}-{rnd}-{i}" for i in range(10)]

    with Threads(join_timeout=45) as th:
        for k in range(2):
            th.start(work, k)


@pytest.mark.timeout(60)
def test_named_prepared_statement_in_transaction_mode_fails_clearly(sluice):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1})
    stop = threading.Event()
    other_errors = []

    def bystander():
        try:
            with s.connect() as o:
                while not stop.is_set():
                    assert o.execute("select %s::int", [7]).fetchone() == (7,)
        except Exception as e:  # noqa: BLE001 - reported below
            other_errors.append(e)

    th = threading.Thread(target=bystander, daemon=True)
    th.start()
    c = s.connect(autocommit=False, prepare_threshold=5)  # None would never prepare
    try:
        with pytest.raises(psycopg.Error) as e:
            c.execute("select %s::int", [1], prepare=True)
        assert "prepared statement" in str(e.value).lower(), str(e.value)
        assert e.value.sqlstate, "error without SQLSTATE"
        c.rollback()
        assert c.execute("select %s::int", [2], prepare=False).fetchone() == (2,)
        c.commit()
        assert c.execute("select 'simple'").fetchone() == ("simple",)
        c.commit()
    finally:
        stop.set()
        c.close()
        th.join(10)
    assert other_errors == [], f"another client was affected: {other_errors}"


@pytest.mark.timeout(60)
def test_named_prepared_statements_work_in_session_mode(sluice):
    s = sluice({"pool_mode": "session"})
    with s.connect(prepare_threshold=0) as c:
        for i in range(10):
            assert c.execute("select %s::int + 1", [i]).fetchone() == (i + 1,)
        assert c.execute("select count(*) from pg_prepared_statements").fetchone()[0] >= 1


# The pooler's peak RSS (VmHWM) may grow less than 64 MB over its value
# right after start, with the default sanitizer settings.

@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_100mb_result_iterated(sluice, mode):
    s = sluice({"pool_mode": mode})
    before = s.peak_rss_kb()
    with s.connect() as c:
        cur = c.cursor()
        n = total = 0
        cur.execute("select repeat('x', 1000) from generate_series(1, 100000)")
        for (v,) in cur:
            n += 1
            total += len(v)
    assert n == 100000 and total == 100_000_000
    assert s.peak_rss_kb() - before < 64 * 1024


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_copy_out_and_in_100mb(sluice, pg, table, mode):
    create_table(pg, table, "a int, b text")
    s = sluice({"pool_mode": mode})
    before = s.peak_rss_kb()
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
    assert s.peak_rss_kb() - before < 64 * 1024


@pytest.mark.timeout(60)
def test_extended_protocol_transaction_mode(sluice):
    s = sluice({"default_pool_size": 2})
    with s.connect() as c:
        for i in range(50):
            assert c.execute("select %s::int + %s::int", [i, 1]).fetchone() == (i + 1,)


@pytest.mark.timeout(60)
def test_pipeline_mode_pool_of_one(sluice):
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
        assert c.execute("select 1").fetchone() == (1,)
    for t in threads:
        t.join(30)
    assert done == [20000] * 3
