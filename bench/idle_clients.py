#!/usr/bin/python3
"""bench/idle_clients.py — open N authenticated, idle PostgreSQL client
connections and hold them (used by bench/run for "memory per idle client").

    idle_clients.py HOST PORT USER DATABASE N [TIMEOUT_S]

Each connection sends a v3 StartupMessage, expects trust authentication
(AuthenticationOk) and waits for ReadyForQuery; at most 64 logins are in
flight at once so the pooler's listen backlog never overflows. When all are
done (or TIMEOUT_S, default 60, has passed) it prints one line
"READY ok=N failed=M first_error=..." and holds the connections until its
standard input closes or it gets SIGTERM/SIGINT; then it sends Terminate on
each and exits. Raw sockets and one epoll selector: 5,000 logins take about
a second, where a driver library would take much longer.
"""
import errno
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time

IN_FLIGHT = 64


def startup_packet(user, database):
    body = struct.pack("!I", 196608)
    for k, v in (("user", user), ("database", database), ("application_name", "idle_clients")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


class Login:
    """One connection's login: connecting -> startup sent -> ready (or failed)."""

    def __init__(self, sock):
        self.sock = sock
        self.inbuf = b""
        self.sent = False
        self.done = False
        self.error = None

    def feed(self, data):
        """Parses what arrived; sets done or error. Messages: type, int32 len, body."""
        self.inbuf += data
        while len(self.inbuf) >= 5:
            mtype = self.inbuf[0:1]
            (mlen,) = struct.unpack("!I", self.inbuf[1:5])
            if mlen < 4 or mlen > 1 << 20:
                self.error = "bad message length %d" % mlen
                return
            if len(self.inbuf) < mlen + 1:
                return
            body = self.inbuf[5 : mlen + 1]
            self.inbuf = self.inbuf[mlen + 1 :]
            if mtype == b"R":
                (code,) = struct.unpack("!I", body[:4])
                if code != 0:
                    self.error = "authentication method %d requested (trust expected)" % code
                    return
            elif mtype == b"E":
                fields = dict((f[:1].decode(), f[1:].decode("utf-8", "replace")) for f in body.split(b"\0") if f)
                self.error = "%s %s" % (fields.get("C", "?"), fields.get("M", "?"))
                return
            elif mtype == b"Z":
                self.done = True
                return


def main():
    if len(sys.argv) < 6:
        sys.stderr.write(__doc__)
        return 2
    host, port, user, database, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 60.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        want = n + 100 if hard == resource.RLIM_INFINITY else min(n + 100, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    stop = []
    holding = []

    def on_signal(*_):
        stop.append(1)
        if holding:
            raise InterruptedError()   # wakes the final blocking read; caught there
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    pkt = startup_packet(user, database)
    sel = selectors.DefaultSelector()
    ready = []
    failed = 0
    first_error = ""
    started = 0
    pending = 0
    deadline = time.monotonic() + timeout
    while (started < n or pending > 0) and time.monotonic() < deadline and not stop:
        while started < n and pending < IN_FLIGHT:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            started += 1
            rc = s.connect_ex((host, port))
            if rc not in (0, errno.EINPROGRESS):
                failed += 1
                first_error = first_error or "connect: %s" % errno.errorcode.get(rc, rc)
                s.close()
                continue
            sel.register(s, selectors.EVENT_WRITE, Login(s))
            pending += 1
        for key, _ in sel.select(timeout=0.5):
            lg = key.data
            try:
                if not lg.sent:
                    err = lg.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect: " + errno.errorcode.get(err, str(err)))
                    lg.sock.send(pkt)
                    lg.sent = True
                    sel.modify(lg.sock, selectors.EVENT_READ, lg)
                    continue
                data = lg.sock.recv(65536)
                if not data:
                    lg.error = "connection closed during login"
                else:
                    lg.feed(data)
            except OSError as e:
                lg.error = str(e)
            if lg.done or lg.error:
                sel.unregister(lg.sock)
                pending -= 1
                if lg.done:
                    ready.append(lg.sock)
                else:
                    failed += 1
                    first_error = first_error or lg.error
                    lg.sock.close()
    # whatever is still pending at the deadline counts as failed
    for key in list(sel.get_map().values()):
        failed += 1
        first_error = first_error or "login timed out"
        key.fileobj.close()
    failed += n - started
    print("READY ok=%d failed=%d first_error=%s" % (len(ready), failed, first_error.replace(" ", "_") or "-"), flush=True)

    # hold until told to stop: standard input closes, or a signal (whose
    # handler has set stop; a blocking read is what it interrupts)
    holding.append(1)
    while not stop:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            pass
    terminate = b"X\0\0\0\4"
    for s in ready:
        try:
            s.send(terminate)
        except OSError:
            pass
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
