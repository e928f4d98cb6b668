"""Helpers of the incident tests in this folder only: a pool's SHOW POOLS
row, /metrics and /health read as data, and the one check every incident
test ends with (what pgsluice says it holds is what PostgreSQL sees).
Helpers any test uses (wait_until, metric, admin_show, http_get...) live
in ../helpers.py."""
import json
import threading

from helpers import admin_show, free_port, http_get, metric, prometheus_samples, wait_until

# Server states as SHOW POOLS counts them; their sum is every server
# connection the pool has open or is opening.
SV_COLUMNS = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")


def http_config(**over):
    """Config overrides with the HTTP endpoint on a free loopback port."""
    cfg = {"http_addr": "127.0.0.1", "http_port": free_port()}
    cfg.update(over)
    return cfg


def health(s):
    code, body = http_get(s.config["http_port"], "/health")
    return code, json.loads(body)


def metrics(s):
    """{(name, frozenset(labels)): value} of /metrics."""
    code, text = http_get(s.config["http_port"], "/metrics")
    assert code == 200, (code, text[:500])
    return prometheus_samples(text)


def pool_row(s, db="appdb", user="app"):
    rows = [r for r in admin_show(s, "POOLS") if r["database"] == db and r["user"] == user]
    return rows[0] if rows else None


def pooler_server_count(s, db="appdb", user="app"):
    """Server connections of a pool as SHOW POOLS counts them."""
    p = pool_row(s, db, user)
    return sum(p[k] for k in SV_COLUMNS) if p else 0


def pg_count(s, db="appdb", user="app"):
    """This pooler's backends of (db, user) as PostgreSQL lists them."""
    return len([b for b in s.backends() if b.datname == db and b.usename == user])


def assert_counts_agree(s, db="appdb", user="app", timeout=5.0):
    """The pooler's own count of its servers (SHOW POOLS and /metrics when
    HTTP is on) equals what pg_stat_activity shows: no phantom slots, no
    connection the pooler has forgotten. Returns the agreed count."""
    http = s.config.get("http_port") not in (None, "0")

    def figures():
        f = {"show_pools": pooler_server_count(s, db, user), "pg_stat_activity": pg_count(s, db, user)}
        if http:
            f["metrics"] = int(metric(metrics(s), "pgsluice_servers", database=db, user=user))
        return f

    got = wait_until(lambda: (lambda f: f if len(set(f.values())) == 1 else None)(figures()), timeout=timeout)
    assert got, f"the pooler's server count disagrees with PostgreSQL: {figures()}"
    return got["pg_stat_activity"]


def not_idle_in_transaction(s):
    """This pooler's backends idle in a transaction (should be none)."""
    return [b for b in s.backends() if b.state in ("idle in transaction", "idle in transaction (aborted)")]


class PeakBackends(threading.Thread):
    """Samples, every 0.1 s until finish(), how many backends PostgreSQL
    has for the pooler (optionally only those of one user)."""

    def __init__(self, s, user=None):
        super().__init__(daemon=True)
        self.s, self.user, self.peak, self.stop = s, user, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, len([b for b in self.s.backends()
                                            if self.user is None or b.usename == self.user]))
            self.stop.wait(0.1)

    def finish(self):
        self.stop.set()
        if self.ident is not None:
            self.join(5)
        return self.peak
