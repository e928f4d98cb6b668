"""Faults the tests inject between pgsluice and PostgreSQL, on 127.0.0.1 only.

Relay: a TCP forwarder on a kernel-chosen port (or a given one: a server
that "comes back" on the port pgsluice has been failing to reach). `silence()` makes every
connection open at that moment stop forwarding in both directions without
closing anything (a socket whose peer vanished without a FIN); connections
made afterwards are forwarded normally. Threads are daemons and `close()`
ends them."""
import select
import socket
import threading


class Relay:
    def __init__(self, target_port, host="127.0.0.1", listen_port=0):
        self.target = (host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", listen_port))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []          # [client_sock, server_sock, silenced_event]
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            quiet = threading.Event()
            with self.lock:
                self.pairs.append((c, s, quiet))
            threading.Thread(target=self._pump, args=(c, s, quiet), daemon=True).start()

    def _pump(self, a, b, quiet):
        try:
            while not self.closed.is_set():
                r, _, _ = select.select([a, b], [], [], 0.2)
                if quiet.is_set():
                    continue  # hold everything: nothing forwarded, nothing closed
                for src in r:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)
        except OSError:
            return
        finally:
            if not quiet.is_set():
                with self.lock:
                    self.pairs = [p for p in self.pairs if p[0] is not a]
                a.close()
                b.close()

    def silence(self):
        """Connections open now go silent; returns how many."""
        with self.lock:
            for _, _, quiet in self.pairs:
                quiet.set()
            return len(self.pairs)

    def close(self):
        self.closed.set()
        self.listener.close()
        with self.lock:
            for a, b, _ in self.pairs:
                for sock in (a, b):
                    try:
                        sock.close()
                    except OSError:
                        pass
