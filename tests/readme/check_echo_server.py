#!/usr/bin/env python3
"""Runs the README's echo server on a free loopback port and checks it like a user would.

Usage: check_echo_server.py SERVER. Several clients at once, a payload larger than the server's
buffer, a half-close (the echo still arrives, then EOF), and a client that vanishes with unread
data. The server is stopped with SIGTERM (by its pid) at the end, whatever happened. Exits 77
(SKIP) when the forced backend (CORIO_BACKEND) cannot be set up here: the server then dies with
corio's error naming the refused call (io_uring_setup under a seccomp filter, say).
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        sender.join()
        s.shutdown(socket.SHUT_WR)  # half-close: the server must answer with EOF
        assert s.recv(1) == b"", "expected EOF after the half-close"
        return bytes(received)


def main() -> int:
    errors = tempfile.TemporaryFile(mode="w+")
    server = subprocess.Popen([sys.argv[1], "0"], stdout=subprocess.PIPE, stderr=errors,
                              text=True)
    try:
        line = server.stdout.readline()
        print(line.strip())
        if not line.startswith("echo server on 127.0.0.1:"):
            server.wait(timeout=20)
            errors.seek(0)
            error = errors.read()
            backend = os.environ.get("CORIO_BACKEND")
            if backend == "io_uring" and "corio: io_uring_setup" in error:
                print(f"SKIP: the io_uring backend is unavailable here: {error.strip()}")
                return 77
            print(f"unexpected first line: {line!r}; stderr: {error!r}", file=sys.stderr)
            return 1
        port = int(line.split()[3].rsplit(":", 1)[1])
        backend = os.environ.get("CORIO_BACKEND")
        if backend and not line.rstrip().endswith(f"({backend})"):
            print(f"expected the {backend} backend: {line!r}", file=sys.stderr)
            return 1

        # A client that goes away without reading what it sent: the server must survive it.
        rude = socket.create_connection(("127.0.0.1", port), timeout=20)
        rude.sendall(os.urandom(1 << 20))
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        rude.close()  # linger 0: RST

        payloads = [os.urandom(n) for n in (1, 1000, 100_000, 3 << 20)]
        results = [None] * len(payloads)
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, roundtrip(port, payloads[i]))) for i in range(len(payloads))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for sent, got in zip(payloads, results):
            if sent != got:
                print(f"echo mismatch: sent {len(sent)} bytes, got {len(got or b'')}", file=sys.stderr)
                return 1
        if server.poll() is not None:
            print(f"server exited early with {server.returncode}", file=sys.stderr)
            return 1
        print(f"{len(payloads)} concurrent echoes verified ({sum(map(len, payloads))} bytes)")
        return 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
