"""Renders charts/forkd and deploy/kubernetes for the tests, and validates the
objects against the Kubernetes OpenAPI schemas.

    objs = render({"forkd": {"nativeSidecar": True}})   # list of dicts
    report = validate(objs)                              # validate.mjs report
    rc, err = render_error({"forkd": {"workers": 0}})    # a failing render

The renderer (tests/helm/renderer, Go text/template + sprig, built offline
by build-renderer.sh) is built once into <build>/helm/ and rebuilt when its
source changes; the npm validators are installed by install-npm.sh when
tests/helm/node_modules is missing. Both steps take a file lock, since CTest
runs test files in parallel.
"""

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile

HELM_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.abspath(os.environ.get("FORKD_SOURCE_DIR") or os.path.join(HELM_DIR, "..", ".."))
CHART_DIR = os.path.join(REPO_DIR, "charts", "forkd")
KUSTOMIZE_DIR = os.path.join(REPO_DIR, "deploy", "kubernetes")
_BUILD_DIR = (os.path.dirname(os.path.abspath(os.environ["FORKD_BIN"]))
              if os.environ.get("FORKD_BIN") else os.path.join(REPO_DIR, "build"))
RENDERER = os.path.join(_BUILD_DIR, "helm", "forkd-helm-render")
_RENDERER_SOURCES = [os.path.join(HELM_DIR, "renderer", n) for n in ("main.go", "go.mod")]


class RenderError(Exception):
    pass


@contextlib.contextmanager
def _locked(name):
    os.makedirs(os.path.dirname(RENDERER), exist_ok=True)
    with open(os.path.join(os.path.dirname(RENDERER), name), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def renderer():
    """Path of the built renderer (built or rebuilt here when needed)."""
    with _locked(".build.lock"):
        newest = max(os.path.getmtime(p) for p in _RENDERER_SOURCES)
        if not os.path.exists(RENDERER) or os.path.getmtime(RENDERER) < newest:
            subprocess.run([os.path.join(HELM_DIR, "build-renderer.sh"), RENDERER],
                           check=True, timeout=300)
    return RENDERER


def ensure_node_modules():
    with _locked(".npm.lock"):
        subprocess.run([os.path.join(HELM_DIR, "install-npm.sh")], check=True, timeout=300)


def _run_renderer(values_sets, extra_args, release, namespace, kube_version="v1.30.0"):
    with tempfile.TemporaryDirectory(prefix="fkhelm") as tmp:
        args = [renderer()]
        for i, values in enumerate(values_sets):
            path = os.path.join(tmp, "values%d.json" % i)
            with open(path, "w") as f:
                json.dump(values, f)
            args += ["-f", path]
        args += ["-release", release, "-namespace", namespace, "-kube-version", kube_version]
        args += extra_args + [CHART_DIR]
        return subprocess.run(args, capture_output=True, text=True, timeout=60)


def _values_list(values):
    if values is None:
        return []
    return list(values) if isinstance(values, (list, tuple)) else [values]


def render(values=None, release="forkd", namespace="default", kube_version="v1.30.0"):
    """The chart's objects for these values (a dict or a list of dicts, later wins)."""
    r = _run_renderer(_values_list(values), ["-o", "json"], release, namespace, kube_version)
    if r.returncode != 0:
        raise RenderError(r.stderr.strip())
    return json.loads(r.stdout)


def render_yaml(values=None, release="forkd", namespace="default"):
    r = _run_renderer(_values_list(values), ["-o", "yaml"], release, namespace)
    if r.returncode != 0:
        raise RenderError(r.stderr.strip())
    return r.stdout


def render_notes(values=None, release="forkd", namespace="default"):
    r = _run_renderer(_values_list(values), ["-notes"], release, namespace)
    if r.returncode != 0:
        raise RenderError(r.stderr.strip())
    return r.stdout


def render_error(values, release="forkd", namespace="default", kube_version="v1.30.0"):
    """(exit code, stderr) of a render that is expected to fail."""
    r = _run_renderer(_values_list(values), ["-o", "json"], release, namespace, kube_version)
    return r.returncode, r.stderr


def kubectl():
    return shutil.which("kubectl")


def kustomize(path):
    """`kubectl kustomize PATH` as a list of objects."""
    out = subprocess.run([kubectl(), "kustomize", path], capture_output=True, text=True,
                         timeout=60)
    if out.returncode != 0:
        raise RenderError("kubectl kustomize %s: %s" % (path, out.stderr.strip()))
    conv = subprocess.run([renderer(), "yaml2json"], input=out.stdout, capture_output=True,
                          text=True, timeout=60)
    if conv.returncode != 0:
        raise RenderError(conv.stderr.strip())
    return json.loads(conv.stdout)


def validate(objects):
    """validate.mjs's report for these objects: {"ok": bool, "objects": [...]}."""
    ensure_node_modules()
    r = subprocess.run(["node", os.path.join(HELM_DIR, "validate.mjs"), "-"],
                       input=json.dumps(objects), capture_output=True, text=True, timeout=120)
    if r.returncode not in (0, 1):
        raise RuntimeError("validate.mjs failed (%d): %s" % (r.returncode, r.stderr))
    return json.loads(r.stdout)


# --- reading rendered objects ------------------------------------------------------


def one(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    if len(found) != 1:
        raise AssertionError("expected one %s%s, found %d: %s" % (
            kind, " " + name if name else "", len(found),
            [o["metadata"]["name"] for o in found]))
    return found[0]


def kinds(objects):
    return sorted(o["kind"] for o in objects)


def pod_spec(objects):
    return one(objects, "Deployment")["spec"]["template"]["spec"]


def container(spec, name):
    """A container of the pod by name, from containers or initContainers."""
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        if c["name"] == name:
            return c
    raise AssertionError("no container %r in the pod" % name)


def forkd_flags(args):
    """forkd's --name=value args as {name: [values]} (flags may repeat)."""
    flags = {}
    for a in args:
        assert a.startswith("--"), "forkd arg %r is not --name[=value]" % a
        name, _, value = a[2:].partition("=")
        flags.setdefault(name, []).append(value)
    return flags


def flag(flags, name):
    values = flags.get(name)
    assert values and len(values) == 1, "--%s given %r" % (name, values)
    return values[0]


def port_of(bind):
    """The port of HOST:PORT or [v6]:PORT."""
    return int(bind.rsplit(":", 1)[1])


def expand_kubelet_vars(text, env):
    """Kubelet's $(VAR) expansion in command and args ($$ escapes a $)."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and ")" in text[i:]:
            end = text.index(")", i)
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# --- running the rendered pod as local processes -----------------------------------


# Where the Dockerfile puts forkd's files in the image (test_k8s_image.py
# checks the Dockerfile against these).
IMAGE_FORKD = "/usr/local/bin/forkd"
IMAGE_FORKCTL = "/usr/local/bin/forkctl"
IMAGE_APP_PY = "/opt/forkd/example-app/app.py"
# The relocatable bundle (scripts/bundle.sh) in the forkd image, which the
# chart's app mode copies into the pod.
IMAGE_BUNDLE = "/opt/forkd/bundle"


def image_paths(forkd_bin, app_py):
    """Commands and paths of the forkd image -> their files in this checkout."""
    return {"forkd": forkd_bin, IMAGE_FORKD: forkd_bin, IMAGE_APP_PY: app_py,
            "python3": "/usr/bin/python3"}


def pod_env(container_env):
    """A container's environment: its own variables over a minimal base (the
    image's PATH; no FORKD_* leaking in from the test's environment)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env.update(container_env)
    return env


class LocalPod:
    """The commands a rendered pod runs, adapted to this machine the least
    possible: the image paths (IMAGE_PATHS) become the repo's files, the
    socket's emptyDir and the token Secret's mount become folders under
    tmpdir, forkd's three binds become free 127.0.0.1 ports. Everything else
    (every other flag, env, the app's args after kubelet's $(VAR) expansion)
    is what the pod spec says.

    Secret volumes (plain or projected) get their files from the chart's
    Secret objects, or from `secrets` ({name: {key: bytes}}) for Secrets the
    user brings (a TLS Secret).

    Attributes: app_argv, app_env, forkd_argv, forkd_env, http_port,
    admin_port, metrics_port, socket_path, spec (the pod spec), forkd, app
    (the rendered containers).
    """

    def __init__(self, objects, tmpdir, image_paths, free_port, secrets=None):
        self.spec = pod_spec(objects)
        self.forkd = container(self.spec, "forkd")
        self.app = container(self.spec, "app")
        volumes = {v["name"]: v for v in self.spec["volumes"]}
        mounts = {}  # container path -> local path, for emptyDir and Secret volumes
        for c in (self.forkd, self.app):
            for m in c.get("volumeMounts", []):
                vol = volumes[m["name"]]
                local = os.path.join(tmpdir, m["name"])
                os.makedirs(local, exist_ok=True)
                if "secret" in vol:
                    self._write_secret(objects, vol["secret"]["secretName"],
                                       vol["secret"].get("items"), local, secrets)
                for source in vol.get("projected", {}).get("sources", []):
                    if "secret" in source:
                        self._write_secret(objects, source["secret"]["name"],
                                           source["secret"].get("items"), local, secrets)
                if m["mountPath"] != "/tmp":
                    mounts[m["mountPath"]] = local

        def local_path(text):
            # A mounted path alone, after "=" (--flag=PATH) or after ":" (unix:PATH).
            for path, local in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                pattern = r"(^|[=:])" + re.escape(path) + r"(?=/|$)"
                if re.search(pattern, text):
                    return re.sub(pattern, lambda m: m.group(1) + local, text, count=1)
            return text

        def env_of(c):
            env = {}
            for e in c.get("env", []):
                assert "value" in e, "only literal env values are supported: %r" % e
                env[e["name"]] = local_path(expand_kubelet_vars(e["value"], env))
            return env

        def argv_of(c, env):
            argv = [expand_kubelet_vars(a, env) for a in c.get("command", []) + c.get("args", [])]
            argv = [image_paths.get(a, a) for a in argv]
            return [local_path(a) for a in argv]

        self.app_env = env_of(self.app)
        self.app_argv = argv_of(self.app, self.app_env)
        self.forkd_env = env_of(self.forkd)
        argv = argv_of(self.forkd, self.forkd_env)
        self.http_port, self.admin_port, self.metrics_port = free_port(), free_port(), free_port()
        binds = {"--bind=": self.http_port, "--admin-bind=": self.admin_port,
                 "--metrics-bind=": self.metrics_port}
        self.forkd_argv = []
        for a in argv:
            for prefix, port in binds.items():
                if a.startswith(prefix):
                    a = "%s127.0.0.1:%d" % (prefix, port)
            self.forkd_argv.append(a)
        self.socket_path = flag(forkd_flags(self.forkd_argv[1:]), "upstream")[len("unix:"):]

    @staticmethod
    def _write_secret(objects, name, items, local, secrets):
        import base64
        if secrets and name in secrets:
            data = secrets[name]
        else:
            data = {k: base64.b64decode(v) for k, v in one(objects, "Secret", name)["data"].items()}
        for item in items or [{"key": k, "path": k} for k in data]:
            with open(os.path.join(local, item["path"]), "wb") as f:
                f.write(data[item["key"]])
