"""The Dockerfile, without a container engine.

No engine runs here, so the test reads the Dockerfile and runs what it runs:
the build stage's RUN lines (scripts/install-deps.sh --build-only,
scripts/build.sh and scripts/bundle.sh) in this checkout, with /src mapped to the repo and
/src/build to the build folder CTest tests; then it checks that every file
the runtime stage copies exists where the build puts it, that every shared
library forkd and forkctl load comes from a package the runtime stage
installs, and the image's contract: non-root user (the chart's runAsUser),
STOPSIGNAL SIGTERM, EXPOSE of the three ports, no HEALTHCHECK.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helm"))

import k8s_render as k8s  # noqa: E402

DOCKERFILE = os.path.join(k8s.REPO_DIR, "Dockerfile")
# In debian:12-slim already (Essential or required by apt/dpkg).
SLIM_BASE = {"libc6", "libgcc-s1"}


def instructions():
    """[(stage index, INSTRUCTION, argument text)] with continuations joined."""
    with open(DOCKERFILE) as f:
        text = f.read()
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    out, stage = [], -1
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, rest.strip()))
    return out


def stage_of(name_or_index):
    ins = instructions()
    if isinstance(name_or_index, int):
        return [(w, a) for s, w, a in ins if s == name_or_index]
    for s, w, a in ins:
        if w == "FROM" and re.search(r"\bAS\s+%s$" % name_or_index, a, re.I):
            return [(w2, a2) for s2, w2, a2 in ins if s2 == s]
    raise AssertionError("no stage %r" % name_or_index)


def final_stage():
    last = max(s for s, _, _ in instructions())
    return stage_of(last)



def test_stages_build_bundle_runtime():
    froms = [a for _, w, a in instructions() if w == "FROM"]
    assert froms == ["debian:12 AS build", "scratch AS bundle", "debian:12-slim"], froms


def test_bundle_stage_holds_only_the_bundle_where_the_chart_copies_it_from():
    """`docker build --target bundle` and `COPY --from=forkd /opt/forkd/bundle`
    (README, Dockerfile comment) find the bundle scripts/bundle.sh makes."""
    stage = stage_of("bundle")
    assert [w for w, _ in stage] == ["FROM", "COPY"]
    copy = shlex.split(stage[1][1])
    made = [shlex.split(a) for w, a in stage_of("build") if w == "RUN" and "bundle.sh" in a]
    assert made == [["BUILD_DIR=/src/build", "scripts/bundle.sh", "/src/build/forkd-bundle"]]
    assert copy == ["--from=build", "/src/build/forkd-bundle", k8s.IMAGE_BUNDLE]
    runtime = [shlex.split(a) for w, a in final_stage() if w == "COPY"]
    assert ["--from=bundle", k8s.IMAGE_BUNDLE, k8s.IMAGE_BUNDLE] in runtime
    with open(DOCKERFILE) as f:
        text = f.read()
    assert "COPY --from=forkd:0.1.0 %s " % k8s.IMAGE_BUNDLE in text


def test_runtime_contract():
    final = final_stage()
    words = [w for w, _ in final]
    assert "HEALTHCHECK" not in [w for _, w, _ in instructions()]
    users = [a for w, a in final if w == "USER"]
    assert len(users) == 1
    uid = users[0].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot)"
    chart = k8s.render()
    assert k8s.pod_spec(chart)["securityContext"]["runAsUser"] == int(uid)
    assert [a for w, a in final if w == "STOPSIGNAL"] == ["SIGTERM"]
    exposed = sorted(int(p.split("/")[0]) for w, a in final if w == "EXPOSE" for p in a.split())
    fk = k8s.container(k8s.pod_spec(chart), "forkd")
    assert exposed == sorted(p["containerPort"] for p in fk["ports"]) == [8000, 9090, 9091]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w in ("RUN", "COPY"))
    entry = [a for w, a in final if w == "ENTRYPOINT"]
    assert entry == ['["forkd"]']


def test_runtime_copies_what_the_chart_runs():
    """forkd, forkctl and the app land where the chart's commands expect them."""
    copies = [a for w, a in final_stage() if w == "COPY"]
    from_build = [shlex.split(a) for a in copies if a.startswith("--from=build")]
    assert from_build == [["--from=build", "/src/build/forkd", "/src/build/forkctl",
                           "/usr/local/bin/"]]
    app_mode = k8s.render({"mode": "app"})
    init = k8s.container(k8s.pod_spec(app_mode), "forkd-bundle")
    assert k8s.IMAGE_BUNDLE + "/." in init["command"]
    assert k8s.IMAGE_FORKD == "/usr/local/bin/forkd"
    assert k8s.IMAGE_FORKCTL == "/usr/local/bin/forkctl"
    assert "deploy/example-app/app.py " + k8s.IMAGE_APP_PY in copies
    chart = k8s.render()
    app = k8s.container(k8s.pod_spec(chart), "app")
    assert app["command"] == ["python3", k8s.IMAGE_APP_PY]
    assert k8s.container(k8s.pod_spec(chart), "forkd")["command"] == ["forkd"]  # on PATH


def runtime_packages():
    runs = " ".join(a for w, a in final_stage() if w == "RUN")
    m = re.search(r"apt-get install -y --no-install-recommends (.*?)(&&|$)", runs)
    assert m, "no apt-get install in the runtime stage"
    return set(m.group(1).split())


def test_runtime_installs_no_build_tools():
    pkgs = runtime_packages()
    assert "python3" in pkgs  # the example app
    assert not [p for p in pkgs if p.endswith("-dev") or p in (
        "build-essential", "cmake", "ninja-build", "golang-go", "gcc", "g++")], pkgs


def run_build_stage_scripts(build):
    """The build stage's RUN lines, run here: /src is the repo, /src/build is `build`."""
    ran = []
    for w, arg in stage_of("build"):
        if w != "RUN":
            continue
        cmd = arg.replace("/src/build", build)
        for part in [p.strip() for p in cmd.split("&&")]:
            if part.startswith("rm -rf /var/lib/apt/lists"):
                continue  # image-size hygiene; not for a developer's machine
            env = dict(os.environ)
            argv = shlex.split(part)
            while argv and re.match(r"^[A-Z_]+=", argv[0]):
                k, _, v = argv.pop(0).partition("=")
                env[k] = v
            assert argv[0].startswith("scripts/"), "build stage runs only the repo's scripts: %s" % part
            # Up to date (checked by the caller), build.sh only reconfigures
            # and finds nothing to do: a bound well above that.
            r = subprocess.run(argv, cwd=k8s.REPO_DIR, env=env, capture_output=True, text=True,
                               timeout=180)
            assert r.returncode == 0, "%s failed:\n%s\n%s" % (part, r.stdout[-2000:], r.stderr[-3000:])
            ran.append(argv[0])
    return ran


def test_build_stage_scripts_run_and_produce_what_runtime_copies(forkd_bin):
    build = os.path.dirname(os.path.abspath(forkd_bin))
    cache = os.path.join(build, "CMakeCache.txt")
    if not os.path.exists(cache):
        pytest.skip("%s is not a CMake build folder" % build)
    with open(cache) as f:
        text = f.read()
    # build.sh reconfigures with its own generator and build type; on a
    # folder configured otherwise it would rebuild everything under the tests.
    want_type = os.environ.get("BUILD_TYPE", "RelWithDebInfo")
    if ("CMAKE_GENERATOR:INTERNAL=Ninja" not in text
            or "CMAKE_BUILD_TYPE:STRING=%s\n" % want_type not in text):
        pytest.skip("%s was not configured by scripts/build.sh (Ninja, %s)" % (build, want_type))
    # The binaries under test must be what build.sh makes of this checkout;
    # a folder behind its sources would make this test a full rebuild.
    # (CONFIGURE_DEPENDS globs make the glob check and a CMake re-run always
    # show up in a dry run; any other step means stale outputs.)
    dry = subprocess.run(["ninja", "-C", build, "-n"], capture_output=True, text=True, timeout=60)
    steps = [line for line in dry.stdout.splitlines() if re.match(r"\[\d+/\d+\] ", line)
             and "Re-checking globbed directories" not in line and "Re-running CMake" not in line]
    if dry.returncode != 0 or steps:
        pytest.skip("%s is behind the sources: run scripts/build.sh, then the tests" % build)
    ran = run_build_stage_scripts(build)
    assert ran == ["scripts/install-deps.sh", "scripts/build.sh", "scripts/bundle.sh"]
    for name in ("forkd", "forkctl", "forkd-bundle/bin/forkd", "forkd-bundle/bin/forkctl"):
        path = os.path.join(build, name)
        assert os.access(path, os.X_OK), "%s: the runtime stage copies it" % path
    assert os.path.exists(os.path.join(k8s.REPO_DIR, "deploy", "example-app", "app.py"))


def packages_of(libs):
    """{library path: Debian package}, from one `dpkg -S` over every spelling
    of each path (/lib and /usr/lib are one folder on Debian 12)."""
    spellings = {}
    for lib in libs:
        for path in (lib, os.path.realpath(lib)):
            for candidate in (path, re.sub(r"^/usr", "", path), "/usr" + path):
                spellings.setdefault(candidate, lib)
    r = subprocess.run(["dpkg", "-S"] + sorted(spellings), capture_output=True, text=True)
    owners = {}
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        if path in spellings:
            owners.setdefault(spellings[path], pkg.split(":")[0])
    return owners


@pytest.mark.parametrize("binary", ["forkd", "forkctl"])
def test_runtime_stage_installs_every_library_the_binaries_load(binary, forkd_bin):
    path = os.path.join(os.path.dirname(os.path.abspath(forkd_bin)), binary)
    if binary == "forkctl" and os.environ.get("FORKCTL_BIN"):
        path = os.environ["FORKCTL_BIN"]
    if not os.access(path, os.X_OK):
        pytest.fail("%s not built" % path)
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    libs = sorted(set(re.findall(r"=>\s+(/\S+)", out)))
    assert libs, out
    owners = packages_of(libs)
    needed = {}
    for lib in libs:
        assert lib in owners, "no Debian package owns %s" % lib
        needed.setdefault(owners[lib], []).append(os.path.basename(lib))
    missing = {p: l for p, l in needed.items() if p not in runtime_packages() | SLIM_BASE}
    assert not missing, "runtime stage lacks packages for: %s" % missing


def test_dockerignore_keeps_build_outputs_out():
    with open(os.path.join(k8s.REPO_DIR, ".dockerignore")) as f:
        rules = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    assert {"build/", "**/node_modules/", ".git/"} <= rules
