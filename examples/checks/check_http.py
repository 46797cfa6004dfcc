#!/usr/bin/env python3
"""Smoke test of the http_server example and its client http_get.

Usage: check_http.py BACKEND_PROBE HTTP_SERVER HTTP_GET. Serves a temporary directory (a small file and a
5 MiB one) on a free loopback port and checks, over raw sockets: the fixed answer, both files
byte-exact, HEAD, 404, traversal attempts, pipelining, a request split byte by byte,
Connection: close, HTTP/1.0 with and without keep-alive, the error answers and their closes
(400, 405, 413, 431, 501, 505), the timeouts (on a second server started with
--header-timeout 1: a slow head gets 408, idle connections and a stalled reader are dropped),
200 concurrent keep-alive connections, EMFILE (a third server limited to 40 fds), http_get
(plain and pipelined), curl and `ab -k` (HTTP/1.0 keep-alive) when installed; that no fd
leaks; then the command line: a port in use, --help, bad flags, a bad backend, and a clean
exit 0 on SIGTERM with a transfer under way.
"""
import hashlib
import os
import pathlib
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import common
from common import Failure, expect

TIMEOUT = 60  # seconds, per blocking step (sanitizer builds are slow)
SMALL = b"small file\n"
BIG = os.urandom(5 << 20)
SECRET = b"outside the root\n"


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def stalled_reader(port: int) -> socket.socket:
    """A client asking for the 5 MiB file twice with a tiny receive buffer, then not reading:
    the server's sends stop making progress once its socket buffer (4 MiB at most) is full."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", port))
    s.sendall(get("/file/big") * 2)
    expect(s.recv(9) == b"HTTP/1.1 ", "no answer to the stalled reader")
    return s


def received_until_closed(s: socket.socket) -> int:
    total = 0
    try:
        while chunk := s.recv(1 << 16):
            total += len(chunk)
    except ConnectionResetError:
        pass
    s.close()
    return total


class Response:
    def __init__(self, status: int, line: str, headers: dict, body: bytes):
        self.status, self.line, self.headers, self.body = status, line, headers, body


def read_response(f, head_only: bool = False) -> Response:
    """One response from the socket file `f`, its body read by Content-Length."""
    line = f.readline().decode("latin-1")
    expect(line.endswith("\r\n"), f"no status line (got {line!r})")
    match = re.fullmatch(r"HTTP/1\.1 (\d{3}) [^\r\n]+\r\n", line)
    expect(match is not None, f"bad status line {line!r}")
    headers = {}
    while (field := f.readline().decode("latin-1")) != "\r\n":
        expect(":" in field, f"bad header line {field!r}")
        name, value = field.split(":", 1)
        headers[name.lower()] = value.strip()
    expect(headers.get("server") == "corio", f"no 'Server: corio' in {headers}")
    length = int(headers["content-length"])
    body = b"" if head_only else f.read(length)
    expect(len(body) == (0 if head_only else length), "body shorter than its Content-Length")
    return Response(int(match[1]), line.strip(), headers, body)


def closed(s: socket.socket) -> bool:
    """True once the server closed `s` (EOF or a reset) with nothing more sent."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def exchange(port: int, data: bytes, count: int = 1, head_only: bool = False):
    """Sends `data` on a new connection; the `count` responses and the still open socket."""
    s = connect(port)
    s.sendall(data)
    f = s.makefile("rb")
    return [read_response(f, head_only) for _ in range(count)], s, f


def get(path: str, host: str = "x") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def check_answers(port: int) -> None:
    [r], s, _ = exchange(port, get("/"))
    expect(r.status == 200 and r.body == b"Hello from corio!\n", f"GET /: {r.line} {r.body!r}")
    expect(r.headers.get("content-type") == "text/plain", f"GET / type: {r.headers}")
    s.close()

    [small, big], s, _ = exchange(port, get("/file/small") + get("/file/big"), 2)
    expect(small.status == 200 and small.body == SMALL, f"/file/small: {small.line}")
    expect(big.status == 200 and hashlib.sha256(big.body).digest() == hashlib.sha256(BIG).digest(),
           f"/file/big: {big.line}, {len(big.body)} bytes, content differs")
    s.close()
    print("GET /, /file/small and the 5 MiB /file/big: byte-exact")

    # HEAD: the headers of a GET, no body: the next response follows at once.
    s = connect(port)
    s.sendall(b"HEAD /file/big HTTP/1.1\r\nHost: x\r\n\r\n" + get("/"))
    f = s.makefile("rb")
    head = read_response(f, head_only=True)
    after = read_response(f)
    expect(head.status == 200 and head.headers["content-length"] == str(len(BIG)),
           f"HEAD /file/big: {head.line} {head.headers}")
    expect(after.body == b"Hello from corio!\n", "the response after a HEAD is garbled")
    s.close()

    for path in ("/file/missing", "/nothing", "/file/", "/file/sub", "/file/fifo"):
        [r], s, _ = exchange(port, get(path))
        expect(r.status == 404, f"GET {path}: {r.line}")
        s.close()
    print("HEAD; 404 for missing files, a directory and a FIFO")

    # Traversal: never the secret beside the root, whatever the spelling.
    for path in ("/file/../secret", "/file/%2e%2e/secret", "/file/%2E%2E%2Fsecret",
                 "/file/..%2fsecret", "/file/%2e%2e", "/file/..", "/file/.", "/file/%00",
                 "/file/small%00", "/file/%2fetc%2fpasswd", "/file/link", "/file/%zz",
                 "/file/%2", "/file/sub%2f..%2f..%2fsecret"):
        s = connect(port)
        s.sendall(get(path))
        f = s.makefile("rb")
        r = read_response(f)
        expect(r.status in (400, 404), f"GET {path}: {r.line}")
        expect(SECRET not in r.body, f"GET {path} served the file outside the root")
        s.close()
    print("traversal attempts: 400/404, nothing outside the root")


def check_streams(port: int) -> None:
    # Three pipelined requests in one send: three answers, in order.
    rs, s, _ = exchange(port, get("/") + get("/file/small") + get("/missing"), 3)
    expect([r.status for r in rs] == [200, 200, 404], f"pipelined: {[r.line for r in rs]}")
    expect(rs[1].body == SMALL, "pipelined: second body wrong")
    expect(all("connection" not in r.headers for r in rs),
           f"HTTP/1.1 keep-alive is the default, not said: {rs[0].headers}")
    s.close()

    # One request split byte by byte over many segments.
    s = connect(port)
    for byte in get("/file/small"):
        s.send(bytes([byte]))
        time.sleep(0.001)
    r = read_response(s.makefile("rb"))
    expect(r.status == 200 and r.body == SMALL, f"split request: {r.line}")
    s.close()
    print("pipelined requests in order; a request split byte by byte")

    for request, what in ((b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "close"),
                          (b"GET / HTTP/1.0\r\n\r\n", "HTTP/1.0")):
        [r], s, _ = exchange(port, request)
        expect(r.status == 200 and r.headers.get("connection") == "close" and closed(s),
               f"{what}: not answered with Connection: close, then closed ({r.headers})")
        s.close()
    # Connection: close with another request behind it: one answer, then a clean close.
    [r], s, _ = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + get("/"))
    expect(r.headers.get("connection") == "close" and closed(s),
           "Connection: close: the request behind it was answered")
    s.close()
    # HTTP/1.0 asking for keep-alive (any case, in a list) is told the connection stays: a
    # client like ab sends its next request only once the answer is complete. Then HTTP/1.0
    # without keep-alive on the same connection: answered, and closed.
    [r], s, f = exchange(port, b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    s.sendall(b"GET /file/small HTTP/1.0\r\nConnection: upgrade, keep-alive\r\n\r\n")
    r2 = read_response(f)
    for answer in (r, r2):
        expect(answer.status == 200 and answer.headers.get("connection") == "keep-alive",
               f"HTTP/1.0 keep-alive: {answer.line} {answer.headers}")
    expect(r2.body == SMALL, "HTTP/1.0 keep-alive: second body wrong")
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    r3 = read_response(f)
    expect(r3.status == 200 and r3.headers.get("connection") == "close" and closed(s),
           f"HTTP/1.0 after keep-alive: {r3.line} {r3.headers}, or not closed")
    s.close()
    print("Connection: close and HTTP/1.0 close after the answer; HTTP/1.0 keep-alive is said and"
          " stays")

    # A small body is read and dropped: 405, and the connection goes on.
    rs, s, _ = exchange(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                        + get("/"), 2)
    expect(rs[0].status == 405 and rs[0].headers.get("allow") == "GET, HEAD",
           f"POST: {rs[0].line} {rs[0].headers}")
    expect(rs[1].status == 200, "no answer after a POST with a body")
    s.close()

    big_body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000
    errors = [(b"GARBAGE\r\n\r\n", 400), (b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400),
              (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
              (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
              (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
              (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
              (big_body, 413),
              (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (9 << 10) + b"\r\n\r\n", 431)]
    for request, status in errors:
        [r], s, _ = exchange(port, request)
        expect(r.status == status, f"{request[:40]!r}...: {r.line}, expected {status}")
        expect(r.headers.get("connection") == "close" and closed(s),
               f"{status}: the connection stays open")
        s.close()
    print("POST with a body: 405 and keep-alive; 400, 413, 431, 501, 505: answered and closed")

    # Many connections at once, each kept alive for a second request.
    conns = [connect(port) for _ in range(200)]
    files = [s.makefile("rb") for s in conns]
    for _ in range(2):
        for s in conns:
            s.sendall(get("/"))
        for f in files:
            expect(read_response(f).status == 200, "concurrent connections: bad answer")
    for s in conns:
        s.close()
    print("200 concurrent keep-alive connections, two requests each")


def check_timeout(server_path: str, root: str) -> None:
    """A second server with --header-timeout 1: a slow head gets 408; an idle connection ends."""
    server = subprocess.Popen([server_path, "--port", "0", "--root", root, "--header-timeout", "1"],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)", server.stdout.readline())[1])
        stalled = stalled_reader(port)
        slow = connect(port)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        idle = connect(port)
        [r], kept, _ = exchange(port, get("/"))  # answered, then idle
        r = read_response(slow.makefile("rb"))
        expect(r.status == 408 and closed(slow), f"slow client: {r.line}, or not closed")
        expect(closed(idle) and closed(kept), "idle connections stay open past the timeout")
        for s in (slow, idle, kept):
            s.close()
        # The stalled reader: dropped a second after its last progress; 2 s more are plenty
        # (were it not dropped, reading would get both files and then wait for TIMEOUT).
        time.sleep(2)
        expect(received_until_closed(stalled) < 2 * len(BIG), "a stalled reader is not dropped")
        server.send_signal(signal.SIGINT)
        expect(server.wait(timeout=TIMEOUT) == 0, f"SIGINT: exit {server.returncode}")
    finally:
        if server.poll() is None:
            server.kill()  # by its pid: only after a failure
            server.wait()
        server.stdout.close()
    print("--header-timeout 1: a slow head gets 408 and a close; idle connections and a stalled"
          " reader are dropped; SIGINT")


def check_fd_limit(server_path: str, root: str) -> None:
    """A server limited to 40 fds, with 60 clients: it backs off on EMFILE and serves them all."""
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    log = os.path.join(os.path.dirname(root), "fd_limit.stderr")
    with open(log, "w") as errors:
        server = subprocess.Popen([server_path, "--port", "0", "--root", root,
                                   "--header-timeout", str(TIMEOUT)],
                                  stdout=subprocess.PIPE, stderr=errors, text=True,
                                  preexec_fn=limit)
        try:
            port = int(re.search(r"127\.0\.0\.1:(\d+)", server.stdout.readline())[1])
            # Kept-alive connections stay open: the server runs out of fds (the listen backlog
            # holds the connections it cannot accept).
            waiting = [connect(port) for _ in range(60)]
            for s in waiting:
                s.sendall(get("/"))
            deadline = time.monotonic() + TIMEOUT
            while "accept: Too many open files" not in pathlib.Path(log).read_text():
                expect(time.monotonic() < deadline, "the fd limit was not reached")
                time.sleep(0.05)
            # Each connection closed frees an fd for one that waits in the backlog.
            while waiting:
                ready, _, _ = select.select(waiting, [], [], TIMEOUT)
                expect(ready != [], f"fd limit: {len(waiting)} clients never answered")
                for s in ready:
                    expect(read_response(s.makefile("rb")).status == 200, "fd limit: bad answer")
                    s.close()
                    waiting.remove(s)
            server.send_signal(signal.SIGTERM)
            expect(server.wait(timeout=TIMEOUT) == 0, f"fd limit: exit {server.returncode}")
        finally:
            if server.poll() is None:
                server.kill()  # by its pid: only after a failure
                server.wait()
            server.stdout.close()
    print("RLIMIT_NOFILE 40 and 60 clients: EMFILE, a back-off, and all of them served")


def run(args, code: int, out: str = "", err: str = "") -> str:
    p = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    expect(p.returncode == code and out in p.stdout and err in p.stderr,
           f"{args}: exit {p.returncode} (expected {code}), stdout {p.stdout[-300:]!r}, "
           f"stderr {p.stderr!r}")
    return p.stdout


def check_clients(port: int, http_get: str) -> None:
    base = f"http://127.0.0.1:{port}"
    out = run([http_get, base + "/", base + "/file/small"], 0)
    expect(out == "HTTP/1.1 200 OK\nHello from corio!\nHTTP/1.1 200 OK\n" + SMALL.decode(),
           f"http_get: {out!r}")
    out = run([http_get, "--pipeline", "--repeat", "5", "--quiet", base + "/file/big",
               base + "/file/small", base + "/missing"], 0)
    expect(out == f"HTTP/1.1 200 OK\n({len(BIG)} bytes)\nHTTP/1.1 200 OK\n({len(SMALL)} bytes)\n"
           "HTTP/1.1 404 Not Found\n(14 bytes)\n" * 5, f"http_get --pipeline: {out!r}")
    run([http_get, "--fail", base + "/missing"], 1, "404 Not Found")
    run([http_get, "http://localhost:1/"], 2, err="bad URL 'http://localhost:1/'")
    run([http_get, "http://127.0.0.1:99999/"], 2, err="bad URL")
    run([http_get, base + "/", "http://127.0.0.2:1/"], 2, err="all on one server")
    run([http_get], 2, err="no URL")
    common.check_command_line(http_get, [["--bogus"], ["--repeat", "0"], ["--repeat"]],
                              args=[base + "/"], backend_flag=False)
    with socket.socket() as unused:  # bound, not listening: connections are refused
        unused.bind(("127.0.0.1", 0))
        run([http_get, f"http://127.0.0.1:{unused.getsockname()[1]}/"], 1,
            err="Connection refused")
    print("http_get: keep-alive, --pipeline --repeat 5, --fail, --help, bad arguments, a refused"
          " connection")

    curl = shutil.which("curl")
    if not curl:
        print("curl is not installed: skipping the curl checks")
        return
    p = subprocess.run([curl, "-sS", base + "/file/big"], capture_output=True, timeout=TIMEOUT)
    expect(p.returncode == 0 and p.stdout == BIG, "curl: /file/big differs")
    # Two URLs: curl reuses the connection.
    p = subprocess.run([curl, "-sS", "-v", base + "/", base + "/file/small"], capture_output=True,
                       timeout=TIMEOUT)
    expect(p.returncode == 0 and p.stdout == b"Hello from corio!\n" + SMALL, f"curl: {p.stdout!r}")
    expect(b"Re-using existing connection" in p.stderr or b"Reusing" in p.stderr,
           "curl did not keep the connection alive")
    print("curl: /file/big byte-exact; two URLs over one kept-alive connection")


def check_ab(port: int) -> None:
    """ApacheBench with -k speaks HTTP/1.0 and asks for keep-alive: every request must be
    answered on a kept connection (a server that keeps it without saying so makes ab wait for
    the close: one request per header timeout)."""
    ab = shutil.which("ab")
    if not ab:
        print("ab is not installed (Debian: apache2-utils): skipping the ab -k checks")
        return
    for path in ("/", "/file/small"):
        p = subprocess.run([ab, "-k", "-n", "2000", "-c", "8", f"http://127.0.0.1:{port}{path}"],
                           capture_output=True, text=True, timeout=TIMEOUT)

        def figure(name: str) -> str:
            match = re.search(rf"^{name}:\s+(\S+)", p.stdout, re.MULTILINE)
            return match[1] if match else "missing"

        counts = [figure(name) for name in ("Complete requests", "Failed requests",
                                             "Keep-Alive requests")]
        expect(p.returncode == 0 and counts == ["2000", "0", "2000"],
               f"ab -k {path}: exit {p.returncode}, complete/failed/kept alive {counts}\n"
               f"{p.stdout[-1000:]}{p.stderr[-500:]}")
        print(f"ab -k -n 2000 -c 8 {path}: 2000 complete, 0 failed, 2000 kept alive"
              f" ({figure('Requests per second')} requests/s)")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def check(server: subprocess.Popen, server_path: str, http_get: str, root: str) -> int:
    line = server.stdout.readline()
    print(line.strip())
    match = re.match(r"http_server on http://127\.0\.0\.1:(\d+)/ \((\w+)\)", line)
    expect(match is not None, f"unexpected first line: {line!r}")
    port = int(match[1])
    backend = os.environ.get("CORIO_BACKEND")
    expect(not backend or backend == "auto" or match[2] == backend,
           f"expected the {backend} backend: {line!r}")
    fds = fd_count(server.pid)

    check_answers(port)
    check_streams(port)
    check_clients(port, http_get)
    check_ab(port)
    check_timeout(server_path, root)
    check_fd_limit(server_path, root)

    # Every connection is closed on the client side: the server's fds come back to where they
    # started (it may take it a moment to see the last closes).
    deadline = time.monotonic() + TIMEOUT
    while fd_count(server.pid) != fds and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(fd_count(server.pid) == fds, f"fd leak: {fds} fds at start, {fd_count(server.pid)} now")
    print(f"no fd leaked ({fds} open)")

    run([server_path, "--port", str(port)], 1, err="Address already in use")
    common.check_command_line(server_path, [["--port", "70000"], ["--bogus"],
                                            ["--header-timeout", "0"], ["--header-timeout"]],
                              args=["--port", "0", "--root", root])
    run([server_path, "--port", "0", "--root", os.path.join(root, "nonexistent")], 1,
        err="No such file or directory")
    print("port in use: exit 1; --help; bad arguments: exit 2; a missing --root: exit 1")

    # SIGTERM with a connection idle in keep-alive and one in the middle of a file: both are
    # closed, and the exit is clean.
    [_], idle, _ = exchange(port, get("/"))
    stalled = stalled_reader(port)
    server.send_signal(signal.SIGTERM)
    expect(closed(idle), "SIGTERM: the idle connection stays open")
    idle.close()
    expect(received_until_closed(stalled) < 2 * len(BIG), "SIGTERM: the transfer goes on")
    expect(server.wait(timeout=TIMEOUT) == 0, f"SIGTERM: exit {server.returncode}")
    print("SIGTERM: an idle connection and one sending a file closed, exit 0")
    return 0


def main() -> int:
    common.probe(sys.argv[1])
    server_path, http_get = sys.argv[2], sys.argv[3]
    with tempfile.TemporaryDirectory() as top:
        root = os.path.join(top, "root")
        os.makedirs(os.path.join(root, "sub"))
        for name, data in ((os.path.join(root, "small"), SMALL),
                           (os.path.join(root, "big"), BIG), (os.path.join(top, "secret"), SECRET)):
            with open(name, "wb") as f:
                f.write(data)
        os.symlink(os.path.join(top, "secret"), os.path.join(root, "link"))
        os.mkfifo(os.path.join(root, "fifo"))
        server = subprocess.Popen([server_path, "--port", "0", "--root", root],
                                  stdout=subprocess.PIPE, text=True)
        try:
            return check(server, server_path, http_get, root)
        except (Failure, OSError, ValueError, subprocess.TimeoutExpired) as e:
            print(f"FAILED: {e}", file=sys.stderr)
            return 1
        finally:
            if server.poll() is None:
                server.kill()  # by its pid: only after a failure
                server.wait()
            server.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
