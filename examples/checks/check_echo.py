#!/usr/bin/env python3
"""Smoke test of echo_server and echo_client, on the backend CORIO_BACKEND names.

Usage: check_echo.py BACKEND_PROBE ECHO_SERVER ECHO_CLIENT. Loopback only; every wait has its own timeout.
Checks, in order:
- echo_client against echo_server (sizes 1 and 64 KiB, pipeline 1 and 8): the summary line;
  and against a bad echo server (one corrupted byte): exit 1 naming the connection and offset;
- clients that vanish mid-write (reset with unread data) and a half-close (all echoed, then EOF);
- a burst of concurrent connections: 10000 if the hard fd limits allow (else as many as they do);
- running out of fds (the server started under a hard RLIMIT_NOFILE of 64): the back-off is
  logged once, an existing connection is still served, the server does not spin (< 0.2 s of
  CPU over 1 s), and once connections close a new one is served;
- --threads 3: connections spread round-robin (the per-thread counts printed on SIGINT);
- SIGTERM: the idle connection is closed, exit 0, the connection count is exact;
- port in use, connection refused: exit 1 with the reason; more connections than the hard fd
  limit allows: exit 1 at once, with a hint; a soft limit below it is raised;
- the command line: --help, bad flags (exit 2), a bad backend (exit 1).
"""
import os
import queue
import re
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import common
from common import Failure, expect

TIMEOUT = 60  # seconds, per blocking step (sanitizer builds are slow)
BACKEND = os.environ.get("CORIO_BACKEND", "auto")
SERVER, CLIENT = sys.argv[2], sys.argv[3]


class Server:
    """echo_server on a free port; its stdout and stderr lines are collected by threads."""

    def __init__(self, *flags: str, fd_limit: int = 0):
        def limit_fds():
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

        self.proc = subprocess.Popen([SERVER, "--port", "0", *flags], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=limit_fds if fd_limit else None)
        self.out, self.err = queue.Queue(), queue.Queue()
        self.readers = [threading.Thread(target=self._read, args=(f, q), daemon=True)
                        for f, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for r in self.readers:
            r.start()
        self.first = self.line(self.out)
        print(self.first)
        m = re.fullmatch(r"echo_server on 127\.0\.0\.1:(\d+) \((\w+), (\d+) threads?, "
                         r"fd limit (\d+)\)", self.first)
        expect(m is not None, f"unexpected first line: {self.first!r}")
        self.port, self.fd_limit = int(m[1]), int(m[4])
        expect(BACKEND == "auto" or m[2] == BACKEND, f"expected the {BACKEND} backend")
        self.connections = 0  # made by this script, for the count printed at shutdown

    @staticmethod
    def _read(f, q):
        for line in f:
            q.put(line.rstrip("\n"))
        q.put(None)

    def line(self, q) -> str:
        try:
            line = q.get(timeout=TIMEOUT)
        except queue.Empty:
            raise Failure("the server printed nothing in time")
        if line is None:
            raise Failure(f"the server exited ({self.proc.wait(TIMEOUT)})")
        return line

    def connect(self) -> socket.socket:
        self.connections += 1
        return socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)

    def stop(self, sig=signal.SIGTERM) -> list:
        """Signals the server (by its pid; sig None: already done), checks exit 0, returns its
        per-thread connection counts."""
        if sig:
            self.proc.send_signal(sig)
        expect(self.proc.wait(TIMEOUT) == 0, f"exit status {self.proc.returncode} on {sig!r}")
        for r in self.readers:
            r.join(TIMEOUT)
        out = list(iter(self.out.get_nowait, None))
        print("\n".join(out))
        counts = [int(n) for n in re.findall(r"^thread \d+: (\d+) connections$", "\n".join(out),
                                             re.M)]
        expect(sum(counts) == self.connections,
               f"expected {self.connections} connections in all: {out}")
        return counts

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()  # by its pid: only after a failure
            self.proc.wait()


def echo(s: socket.socket, payload: bytes) -> None:
    """Sends `payload` (from a thread: it may exceed the socket buffers) and reads it back."""
    sender = threading.Thread(target=s.sendall, args=(payload,))
    sender.start()
    received = bytearray()
    while len(received) < len(payload):
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        received += chunk
    sender.join(TIMEOUT)
    expect(received == payload, f"echo of {len(payload)} bytes: got {len(received)}, or wrong")


def run(*args: str, status: int) -> subprocess.CompletedProcess:
    p = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    expect(p.returncode == status,
           f"{args}: exit {p.returncode}, expected {status}\n{p.stdout}{p.stderr}")
    return p


SUMMARY = re.compile(r"roundtrips=(\d+) seconds=(\d+\.\d{3}) rt_per_s=(\d+) p50_us=([\d.]+) "
                     r"p99_us=([\d.]+) p999_us=([\d.]+) errors=(\d+) backend=(\w+) "
                     r"connections=(\d+) size=(\d+) pipeline=(\d+)")


def check_client(server: Server) -> None:
    for size in (1, 65536):
        for pipeline in (1, 8):
            p = run(CLIENT, "--port", str(server.port), "--connections", "3", "--size",
                    str(size), "--pipeline", str(pipeline), "--duration", "0.5", status=0)
            server.connections += 3
            print(p.stdout.strip())
            m = SUMMARY.fullmatch(p.stdout.strip())
            expect(m is not None, f"unexpected summary: {p.stdout!r}")
            expect(int(m[1]) > 0 and int(m[7]) == 0, "no round trips, or errors")
            expect(BACKEND == "auto" or m[8] == BACKEND, f"expected the {BACKEND} backend")
            expect((m[9], m[10], m[11]) == ("3", str(size), str(pipeline)), "wrong echo of flags")
            expect(float(m[4]) <= float(m[5]) <= float(m[6]), "percentiles out of order")


def check_client_sees_bad_echo() -> None:
    """A server that echoes one byte wrong, in its third chunk: the client must say where."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def bad_echo():
        conn, _ = listener.accept()
        with conn:
            for chunk in range(1000):
                data = bytearray(conn.recv(64))
                if not data:
                    return
                if chunk == 2:
                    data[-1] ^= 0x40
                conn.sendall(data)

    t = threading.Thread(target=bad_echo, daemon=True)
    t.start()
    p = run(CLIENT, "--port", str(port), "--duration", "10", status=1)
    expect("connection 0: echo mismatch in message" in p.stderr, f"no mismatch: {p.stderr!r}")
    expect("errors=1 " in p.stdout, f"the summary should count the error: {p.stdout!r}")
    print(p.stderr.strip())
    t.join(TIMEOUT)
    listener.close()


def check_rude_clients(server: Server) -> None:
    for _ in range(3):
        s = server.connect()
        s.setblocking(False)
        chunk, sent = os.urandom(1 << 16), 0
        try:  # until the buffers are full: the server is blocked writing its echo
            while sent < 64 << 20:
                sent += s.send(chunk)
        except BlockingIOError:
            pass
        s.setblocking(True)
        expect(s.recv(1) != b"", "no echo on the rude connection")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # linger 0: RST, with the echo unread
    with server.connect() as s:
        s.shutdown(socket.SHUT_WR)  # half-close at once: nothing to echo, then EOF
        expect(s.recv(1) == b"", "expected EOF")
    with server.connect() as s:
        payload = os.urandom(3 << 20)
        sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        sender.start()
        received = bytearray()
        while chunk := s.recv(1 << 16):
            received += chunk
        sender.join(TIMEOUT)
        expect(received == payload, "half-close: the echo was cut short or wrong")
    print("clients that vanish mid-write and half-close: served")


def check_burst(server: Server) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = min(10000, hard - 100, server.fd_limit - 100)
    if count < 2000:  # a machine's limit, not the server's fault: test what it allows
        print(f"only {count} connections: the hard fd limits are {hard} and {server.fd_limit}")
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for i in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", server.port))
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE, i)
        server.connections += count
        pending, deadline = count, time.monotonic() + TIMEOUT
        while pending:  # connected: send the connection's number
            expect(time.monotonic() < deadline, f"{pending} connections not established")
            for key, _ in sel.select(1):
                s, i = key.fileobj, key.data
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                expect(err == 0, f"connection {i}: {os.strerror(err)}")
                s.send(b"%08d" % i)
                sel.unregister(s)
                pending -= 1
        # All connected and open at once; now every echo must come back, on its connection.
        for i, s in enumerate(socks):
            sel.register(s, selectors.EVENT_READ, i)
        pending, deadline = count, time.monotonic() + TIMEOUT
        while pending:
            expect(time.monotonic() < deadline, f"{pending} echoes missing")
            for key, _ in sel.select(1):
                s, i = key.fileobj, key.data
                data = s.recv(8, socket.MSG_WAITALL)
                expect(data == b"%08d" % i, f"connection {i}: echo {data!r}")
                sel.unregister(s)
                pending -= 1
    finally:
        for s in socks:
            s.close()
        sel.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print(f"{count} concurrent connections echoed")


def check_out_of_fds() -> None:
    server = Server(fd_limit=64)
    try:
        expect(server.fd_limit == 64, "the server should report its fd limit")
        existing = server.connect()
        echo(existing, b"before")
        extra = [server.connect() for _ in range(100)]  # more than the fds: some wait in the backlog
        line = server.line(server.err)
        print(line)
        expect("Too many open files" in line and "backing off" in line, f"log: {line!r}")
        before = server.cpu_seconds()
        time.sleep(1)
        cpu = server.cpu_seconds() - before
        print(f"server CPU time over 1 s out of fds: {cpu:.2f} s")
        expect(cpu < 0.2, "the server spins while out of fds")
        echo(existing, b"still served")
        expect(server.err.empty(), "the back-off should be logged once per episode")
        for s in extra:
            s.close()
        with server.connect() as s:
            echo(s, b"served again")
        line = server.line(server.err)
        expect(line == "echo_server: accepting again", f"log: {line!r}")
        existing.close()
        server.stop()
    finally:
        server.kill()
    print("out of fds: backed off, kept serving, recovered")


def check_threads() -> None:
    server = Server("--threads", "3")
    try:
        run(CLIENT, "--port", str(server.port), "--connections", "5", "--threads", "2",
            "--duration", "0.2", status=0)
        server.connections += 5
        for _ in range(4):
            with server.connect() as s:
                echo(s, os.urandom(100_000))
        counts = server.stop(signal.SIGINT)
        expect(len(counts) == 3 and max(counts) - min(counts) <= 1, f"not round-robin: {counts}")
    finally:
        server.kill()


def check_errors(server: Server) -> None:
    p = run(SERVER, "--port", str(server.port), status=1)
    expect(f"echo_server: listen on 127.0.0.1:{server.port}: Address already in use\n" == p.stderr,
           f"port in use: {p.stderr!r}")
    with socket.socket() as reserved:  # bound, not listening: connections are refused
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        p = run(CLIENT, "--port", str(port), "--duration", "1", status=1)
        expect(p.stderr == f"echo_client: connect to 127.0.0.1:{port}: Connection refused\n",
               f"refused: {p.stderr!r}")
    def limited(soft: int, hard: int):
        return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    start = time.monotonic()
    p = subprocess.run([CLIENT, "--port", str(server.port), "--connections", "1000"], text=True,
                       capture_output=True, timeout=TIMEOUT, preexec_fn=limited(256, 256))
    expect(p.returncode == 1 and "--connections 1000 needs about" in p.stderr
           and "hard limit is 256" in p.stderr and time.monotonic() - start < 5,
           f"over the fd limit: exit {p.returncode}, {p.stderr!r}")
    print(p.stderr.strip())
    p = subprocess.run([CLIENT, "--port", str(server.port), "--connections", "200", "--duration",
                        "0.2"], text=True, capture_output=True, timeout=TIMEOUT,
                       preexec_fn=limited(64, 4096))
    server.connections += 200
    expect(p.returncode == 0, f"a soft fd limit of 64 is not raised: {p.stdout!r} {p.stderr!r}")
    common.check_command_line(SERVER, [["--threads", "0"], ["--port", "65536"], ["--bogus"],
                                       ["--port"]], args=["--port", "0"])
    common.check_command_line(CLIENT, [["--connections", "0"], ["--size", "1k"],
                                       ["--duration", "-1"], ["--host", "localhost"], ["extra"]],
                              args=["--port", str(server.port)])
    print("port in use, connection refused, the fd limit, the command line: as expected")


def main() -> int:
    common.probe(sys.argv[1])
    server = Server()
    try:
        check_client(server)
        check_client_sees_bad_echo()
        check_rude_clients(server)
        check_burst(server)
        check_errors(server)
        idle = server.connect()
        echo(idle, b"ping")
        server.proc.send_signal(signal.SIGTERM)
        try:
            expect(idle.recv(1) == b"", "the idle connection got data instead of EOF")
        except ConnectionResetError:
            pass
        idle.close()
        server.stop(None)
        print(f"SIGTERM: clean exit after {server.connections} connections")
        check_out_of_fds()
        check_threads()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
