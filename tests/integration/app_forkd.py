"""App mode harness (issue 11): the real forkd binary running the app's own
processes, `forkd -w N -- CMD`.

    with AppForkd(example_app(), ["-w", "3"]) as fk:
        apps = fk.ready_apps(3)              # {pid: socket}
        pid = get_pid(fk.port)               # through forkd's --bind port

Shared by test_app_mode.py (the master's side, asking each app socket
directly) and test_app_routing.py (every request through forkd).
"""
import http.client
import os

from forkd_harness import (Forkd, REPO_DIR, child_pids, unix_http_request,
                           wait_until)

EXAMPLE_APP = os.path.join(REPO_DIR, "deploy", "example-app", "app.py")
GUNICORN = "/usr/bin/gunicorn"
NODE = "/usr/bin/node"


class AppForkd(Forkd):
    """Forkd in app mode: no --upstream (app mode refuses it), the app
    command after `--`, `proxy_workers` event-loop processes in front."""

    def __init__(self, app_cmd, args=(), proxy_workers=1, **kw):
        self.app_cmd = list(app_cmd)
        self.proxy_workers = proxy_workers
        kw.setdefault("upstream", "unix:/unused")
        super().__init__(args=args, **kw)

    def command(self):
        cmd = super().command()
        i = cmd.index("--upstream")
        del cmd[i:i + 2]
        return cmd + ["--proxy-workers", str(self.proxy_workers), "--"] + self.app_cmd

    def app_processes(self):
        """{pid: socket} of the master's children that are app processes."""
        out = {}
        for pid in child_pids(self.proc.pid):
            try:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            for e in env:
                if e.startswith(b"FORKD_SOCKET="):
                    out[pid] = e[len(b"FORKD_SOCKET="):].decode()
        return out

    def ready_apps(self, n, timeout=30):
        """Waits for exactly n app processes that each answer /pid with their
        own pid; returns {pid: socket}."""
        def ok():
            apps = self.app_processes()
            if len(apps) != n:
                return None
            for pid, sock in apps.items():
                try:
                    status, _, body = unix_http_request(sock, "GET", "/pid", timeout=2)
                except OSError:
                    return None
                if status != 200 or int(body) != pid:
                    return None
            return apps
        return wait_until(ok, timeout, interval=0.1, what="%d ready app processes" % n)

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def error_log_text(self):
        try:
            with open(self.error_log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


def example_app(*extra):
    """The example app's command line (it serves on the inherited fd 3)."""
    return ["/usr/bin/python3", EXAMPLE_APP, "--verbose"] + list(extra)


def write_wsgi_app(directory):
    """A WSGI app answering its pid (for Gunicorn), as wsgiapp:app in directory."""
    with open(os.path.join(directory, "wsgiapp.py"), "w") as f:
        f.write("import os\n"
                "def app(environ, start_response):\n"
                "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                "    return [str(os.getpid()).encode()]\n")


def write_node_app(directory):
    """A Node server on fd 3 answering its pid; returns the script's path."""
    js = os.path.join(directory, "server.js")
    with open(js, "w") as f:
        f.write("require('http').createServer((q, r) => r.end(String(process.pid)))"
                ".listen({fd: 3});\n")
    return js


def get(port, path, timeout=10):
    """GET through forkd on a new connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def get_pid(port, timeout=10):
    """The pid of the app process that served GET /pid through forkd."""
    status, _, body = get(port, "/pid", timeout)
    assert status == 200, (status, body)
    return int(body)
