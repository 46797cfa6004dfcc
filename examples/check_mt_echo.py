#!/usr/bin/env python3
"""Smoke test of the mt_echo example: echoes, spread over threads, and a clean shutdown.

Usage: check_mt_echo.py MT_ECHO. Starts the server on a free loopback port with 3 threads, runs
concurrent clients with payloads up to a few MiB (every echoed byte is compared), one client
that resets its connection with unread data and one that stays idle; then sends SIGTERM (by pid)
and checks that the idle client sees its connection closed, that the server exits 0, and that
the per-thread connection counts it prints add up and are round-robin balanced.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import threading

THREADS = 3
TIMEOUT = 60  # seconds, per blocking step (sanitizer builds are slow)


def echo(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            received += chunk
        sender.join()
        return bytes(received)


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def check(server: subprocess.Popen) -> int:
    line = server.stdout.readline()
    print(line.strip())
    match = re.fullmatch(r"mt_echo on 127\.0\.0\.1:(\d+) \((\w+), (\d+) threads\)\n", line)
    if not match:
        return fail(f"unexpected first line: {line!r}")
    port = int(match[1])
    backend = os.environ.get("CORIO_BACKEND")
    if backend and backend != "auto" and match[2] != backend:
        return fail(f"expected the {backend} backend: {line!r}")
    if int(match[3]) != THREADS:
        return fail(f"expected {THREADS} threads: {line!r}")

    connections = 0
    # A client that resets its connection with data unread: the server must survive it. It
    # waits for the first echoed byte, so the connection is known to be accepted and served.
    rude = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    rude.sendall(os.urandom(1 << 20))
    if not rude.recv(1):
        return fail("no echo on the rude connection")
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    rude.close()  # linger 0: RST
    connections += 1

    payloads = [os.urandom(n) for n in (1, 1000, 65536, 100_000, 1 << 20, 3 << 20, 4 << 20)]
    results = [None] * len(payloads)
    clients = [threading.Thread(target=lambda i=i: results.__setitem__(i, echo(port, payloads[i])))
               for i in range(len(payloads))]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    connections += len(clients)
    for sent, got in zip(payloads, results):
        if sent != got:
            return fail(f"echo mismatch: sent {len(sent)} bytes, got {len(got or b'')}")
    print(f"{len(payloads)} concurrent echoes verified ({sum(map(len, payloads))} bytes)")

    # An idle connection, served (one echo) and then waiting in recv when SIGTERM comes.
    idle = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    idle.sendall(b"ping")
    if idle.recv(4) != b"ping":
        return fail("no echo on the idle connection")
    connections += 1
    if server.poll() is not None:
        return fail(f"server exited early with {server.returncode}")

    server.send_signal(signal.SIGTERM)
    try:
        closed = idle.recv(1) == b""
    except ConnectionResetError:
        closed = True
    idle.close()
    if not closed:
        return fail("the idle connection got data instead of being closed")
    out, _ = server.communicate(timeout=TIMEOUT)
    print(out, end="")
    if server.returncode != 0:
        return fail(f"server exited with {server.returncode} on SIGTERM")
    counts = [int(n) for n in re.findall(r"^thread \d+: (\d+) connections$", out, re.M)]
    if len(counts) != THREADS or sum(counts) != connections:
        return fail(f"expected {connections} connections over {THREADS} threads: {counts}")
    if max(counts) - min(counts) > 1:
        return fail(f"connections not spread round-robin: {counts}")
    print(f"{connections} connections over {THREADS} threads, clean exit on SIGTERM")
    return 0


def main() -> int:
    server = subprocess.Popen([sys.argv[1], "--threads", str(THREADS), "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        return check(server)
    finally:
        if server.poll() is None:
            server.kill()  # by its pid: only after a failure
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
