"""Shared helpers of the core integration tests."""
import hashlib
import os
import socket
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PGBIN = "/usr/lib/postgresql/15/bin"
SLUICE_BIN = os.environ.get("PGSLUICE_BIN", os.path.join(ROOT, "build", "pgsluice"))

USERS = {
    # name: (password, how PostgreSQL stores it)
    "app": ("apppass", "scram-sha-256"),
    "md5user": ("md5pass", "md5"),
    "scramuser": ("scrampass", "scram-sha-256"),
    "passuser": ("passpass", "scram-sha-256"),
    "trustuser": ("trustpass", "scram-sha-256"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def md5_secret(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def wait_until(pred, timeout=5.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()
