"""The incident: connections went back to the pool still inside a
transaction (INTRANS), so the next user of the connection failed with
psycopg's "can't change autocommit now".

What pgsluice must do: never hand out a server whose last ReadyForQuery
was not idle, and reset a server on release (ROLLBACK when its client left
it inside a transaction or in a failed one). Here clients leave inside a
transaction or a failed one, on a pool of one server, so the very next
client gets that same server; it must find no transaction in progress
(`now() = statement_timestamp()`, no transaction id assigned, nothing of
the previous transaction visible, psycopg able to switch autocommit), and
pgsluice_release_rollbacks_total counts the resets. A SQLAlchemy service
that does not roll back on return (pool_reset_on_return=None) behind the
pooler is the second reproduction.
"""
import psycopg
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import pgwire
from helpers import create_table, metric, wait_until
from incident_helpers import assert_counts_agree, http_config, metrics, not_idle_in_transaction

FRESH = ("select now() = statement_timestamp() as fresh, pg_current_xact_id_if_assigned() as xid, "
         "pg_backend_pid() as pid, current_setting('statement_timeout') as st")


def leave_intrans(s, table, how):
    """A client that leaves with its transaction open (or failed); returns
    the backend pid it used."""
    if how in ("close", "close_failed"):
        c = s.connect(autocommit=False)
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        c.execute(f"insert into {table} values (1)")
        c.execute("set local statement_timeout = '1234ms'")
        if how == "close_failed":
            with pytest.raises(psycopg.errors.DivisionByZero):
                c.execute("select 1/0")
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        else:
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        c.close()  # Terminate inside the transaction
        return pid
    c = pgwire.connect(s.port)
    r = c.query_ok(f"begin; insert into {table} values (1); set local statement_timeout = '1234ms'; "
                   "select pg_backend_pid()")
    assert r.status == "T"
    if how == "extended_unsynced":  # more work sent with the extended protocol, no Sync yet
        c.send(pgwire.parse(f"insert into {table} values (2)") + pgwire.bind() + pgwire.execute() + pgwire.flush())
        assert [c.recv_msg()[0] for _ in range(3)] == ["1", "2", "C"]
    elif how == "failed_unsynced":  # an error in an unsynced pipeline: the server skips to the next Sync
        c.send(pgwire.parse("select 1/0") + pgwire.bind() + pgwire.execute() + pgwire.flush())
        got = [c.recv_msg()]
        while got[-1][0] != "E" and len(got) < 4:
            got.append(c.recv_msg())
        assert got[-1][0] == "E" and pgwire.parse_error(got[-1][1])["C"] == "22012", got
    c.close_abruptly("rst" if how in ("reset", "failed_unsynced") else "fin")
    return int(r.rows[0][0])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_next_user_never_sees_the_previous_transaction(sluice, pg, table, mode):
    create_table(pg, table)
    s = sluice(http_config(pool_mode=mode, default_pool_size=1, query_wait_timeout="5s"))
    ways = ("close", "close_failed", "abrupt", "reset", "extended_unsynced", "failed_unsynced")
    rounds = 4
    for r in range(rounds):
        for how in ways:
            pid = leave_intrans(s, table, how)
            with s.connect() as c:  # autocommit, as the next user in the incident
                row = c.execute(FRESH).fetchone()
                assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE, \
                    f"after '{how}': the next client was handed a server in a transaction"
                fresh, xid, next_pid, st = row
                assert fresh and xid is None, f"after '{how}': a transaction was in progress ({row})"
                assert st == "0", f"after '{how}': the previous transaction's SET LOCAL is still in force"
                assert next_pid == pid, "the pool of one should hand on the same (reset) server"
                c.autocommit = False  # "can't change autocommit now" if the server were in a transaction
                assert c.execute(f"select count(*) from {table}").fetchone() == (0,)
                assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
                c.rollback()
                c.autocommit = True
    assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)]
    assert wait_until(lambda: not not_idle_in_transaction(s), timeout=2)
    m = metrics(s)
    rollbacks = metric(m, "pgsluice_release_rollbacks_total", database="appdb", user="app")
    # one ROLLBACK per client that left inside a transaction (the next users ended their own)
    assert rollbacks >= rounds * len(ways), f"release rollbacks counted: {rollbacks}"
    assert assert_counts_agree(s) == 1
    print(f"\n{mode}: {rounds * len(ways)} clients left in INTRANS/INERROR; every next user found a fresh "
          f"transaction on the same backend; release_rollbacks_total={rollbacks:.0f}")


@pytest.mark.timeout(60)
def test_sqlalchemy_service_that_does_not_roll_back_on_return(sluice, pg, table):
    """SQLAlchemy in front of the pooler with NullPool (each checkout is a
    pooler connection) and pool_reset_on_return=None: every request returns
    its driver connection inside a transaction (or an aborted one), which
    the pooler sees as a client leaving inside a transaction. The next
    request, which asks for AUTOCOMMIT, must never fail and must see a
    fresh transaction."""
    create_table(pg, table)
    s = sluice(http_config(pool_mode="transaction", default_pool_size=2, query_wait_timeout="5s"))
    url = f"postgresql+psycopg2://app@127.0.0.1:{s.port}/appdb"
    args = {"sslmode": "disable", "gssencmode": "disable", "connect_timeout": 5, "application_name": "orders"}
    engine = sa.create_engine(url, future=True, poolclass=NullPool, pool_reset_on_return=None, connect_args=args)
    before = metric(metrics(s), "pgsluice_release_rollbacks_total", database="appdb", user="app")
    requests = 20
    try:
        for i in range(requests):
            # the request works on the driver connection (as raw-cursor code does), never commits, and
            # gives it back; with pool_reset_on_return=None nothing rolls back before NullPool closes it
            dbapi = engine.raw_connection()
            cur = dbapi.cursor()
            cur.execute(f"insert into {table} values (%s)", [i])
            if i % 2:
                with pytest.raises(psycopg2.errors.DivisionByZero):
                    cur.execute("select 1/0")
            assert dbapi.get_transaction_status() == (psycopg2.extensions.TRANSACTION_STATUS_INERROR if i % 2
                                                      else psycopg2.extensions.TRANSACTION_STATUS_INTRANS)
            dbapi.close()
            with engine.connect() as conn:  # the next request switches to autocommit: must not fail
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                fresh, xid = conn.execute(sa.text("select now() = statement_timestamp(), "
                                                  "pg_current_xact_id_if_assigned()")).one()
                assert fresh and xid is None, f"request {i}: a transaction was in progress"
                assert conn.execute(sa.text(f"select count(*) from {table}")).scalar() == 0
    finally:
        engine.dispose()
    assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)]
    assert wait_until(lambda: not not_idle_in_transaction(s), timeout=2)
    rollbacks = metric(metrics(s), "pgsluice_release_rollbacks_total", database="appdb", user="app") - before
    assert rollbacks >= requests, f"release rollbacks counted: {rollbacks}"
    assert assert_counts_agree(s) <= 2
    print(f"\nSQLAlchemy: {requests} connections returned inside a transaction; "
          f"release_rollbacks_total moved by {rollbacks:.0f}")
