"""scripts/bundle.sh: forkd, forkctl and their libraries in one folder that
runs anywhere glibc does.

The bundle is made from the binaries under test, copied to a fresh folder,
and then run in a root that holds nothing but glibc (the loader, libc, libm
and glibc's compatibility stubs) and the bundle: a private mount namespace
chrooted there (unshare --root) with its own /proc. forkd answers
--version, serves a request to the example app (outside the root, through
a socket in it) with two workers, and the loader's own trace (LD_DEBUG=libs)
of the master and of each worker shows every non-glibc library loaded from
the bundle. Outside the root, LD_LIBRARY_PATH pointing at the system's
copies does not win over the bundle's DT_RPATH.
"""

import os
import re
import shutil
import signal
import subprocess

import pytest

from forkd_harness import (FORKCTL_BIN, REPO_DIR, ExampleApp, StopWaiting, free_port,
                           http_get, short_tmpdir, wait_until)

BUNDLE_SH = os.path.join(REPO_DIR, "scripts", "bundle.sh")
MULTIARCH = "/lib/x86_64-linux-gnu"
# glibc's libraries the minimal root gets (the stubs too: old binaries
# and some libraries still name them).
GLIBC_FILES = ["ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libpthread.so.0",
               "libdl.so.2", "librt.so.1"]
GLIBC_SONAME = re.compile(
    r"^(linux-vdso|ld-linux[-\w]*|libc|libm|libmvec|libpthread|libdl|librt|libresolv|libutil"
    r"|libanl|libnss_\w+|libBrokenLocale|libthread_db|libc_malloc_debug)\.so(\.|$)")


def ldd(path, env=None):
    """{soname: resolved path or None} of ldd's closure for path."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True,
                         env=env, timeout=30).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if m:
            libs[m.group(1)] = None if m.group(2) == "not" else m.group(2)
    return libs


def non_glibc(libs):
    return {name: path for name, path in libs.items() if not GLIBC_SONAME.match(name)}


def rpath_entries(path):
    """(tag, value) of the DT_RPATH/DT_RUNPATH entries of an ELF file."""
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return re.findall(r"\((RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[(.*)\]", out)


def loaded_libraries(debug_text):
    """Paths the loader initialised, from LD_DEBUG=libs output."""
    return set(re.findall(r"calling init: (\S+)", debug_text))


@pytest.fixture(scope="module")
def bundle():
    """The bundle made from the binaries under test, moved to a fresh folder
    (the one it was made in is deleted: nothing may point back at it)."""
    forkd = os.environ.get("FORKD_BIN") or os.path.join(REPO_DIR, "build", "forkd")
    if not os.access(forkd, os.X_OK):
        pytest.fail("forkd not built: %s" % forkd)
    if not os.access(FORKCTL_BIN, os.X_OK):
        pytest.fail("forkctl not built: %s" % FORKCTL_BIN)
    if shutil.which("patchelf") is None:
        pytest.fail("patchelf not installed (scripts/install-deps.sh)")
    made = short_tmpdir("fkbm")
    fresh = short_tmpdir("fkb")
    try:
        r = subprocess.run([BUNDLE_SH, os.path.join(made, "forkd-bundle"), forkd, FORKCTL_BIN],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        shutil.copytree(os.path.join(made, "forkd-bundle"), os.path.join(fresh, "forkd"),
                        symlinks=True)
        shutil.rmtree(made)
        yield {"dir": os.path.join(fresh, "forkd"), "forkd": forkd, "tmp": fresh}
    finally:
        shutil.rmtree(made, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)


@pytest.fixture
def glibc_root(bundle, tmp_short):
    """A root folder with glibc, the bundle at /forkd, and empty /proc, /tmp,
    /run and /ld (where LD_DEBUG_OUTPUT writes)."""
    if os.geteuid() != 0:
        pytest.skip("chroot into a minimal root needs root (CI and the dev machines run as root)")
    if shutil.which("unshare") is None:
        pytest.fail("unshare not installed (util-linux; scripts/install-deps.sh)")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True,
                           timeout=10)
    if probe.returncode != 0:
        pytest.skip("no mount namespaces here (a container without CAP_SYS_ADMIN): %s"
                    % probe.stderr.strip())
    root = os.path.join(tmp_short, "root")
    for d in ("lib/x86_64-linux-gnu", "lib64", "proc", "tmp", "run", "ld"):
        os.makedirs(os.path.join(root, d))
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    for name in GLIBC_FILES:
        src = os.path.join(MULTIARCH, name)
        if os.path.exists(src):
            shutil.copy2(os.path.realpath(src), os.path.join(root, "lib/x86_64-linux-gnu", name))
    os.symlink("../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
               os.path.join(root, "lib64", "ld-linux-x86-64.so.2"))
    shutil.copytree(bundle["dir"], os.path.join(root, "forkd"), symlinks=True)
    return root


ESSENTIAL = {"/forkd/bin/../lib/libgrpc.so.29", "/forkd/bin/../lib/libstdc++.so.6"}


def complete_traces(root):
    done = []
    for name in os.listdir(os.path.join(root, "ld")):
        with open(os.path.join(root, "ld", name)) as f:
            if ESSENTIAL <= loaded_libraries(f.read()):
                done.append(name)
    return done


def in_root(root, argv):
    """argv run chrooted in root, in a private mount namespace with its own
    /proc (the loader finds $ORIGIN through /proc/self/exe, as in any
    container). unshare execs the program: the pid is the program's."""
    return ["unshare", "--mount", "--propagation", "private", "--mount-proc=/proc",
            "--root=" + root] + list(argv)


# --- what the bundle holds ------------------------------------------------------------


def test_bundle_holds_every_library_but_glibcs(bundle):
    lib = os.path.join(bundle["dir"], "lib")
    needed = set(non_glibc(ldd(bundle["forkd"]))) | set(non_glibc(ldd(FORKCTL_BIN)))
    # The usual suspects, so that a broken ldd parse cannot pass as "nothing needed".
    for name in ("libgrpc++.so.1.51", "libprotobuf.so.32", "libnghttp2.so.14", "libssl.so.3",
                 "libcrypto.so.3", "libcares.so.2", "libre2.so.9", "libstdc++.so.6",
                 "libprometheus-cpp-core.so.1.0", "libabsl_base.so.20220623"):
        assert name in needed, name
    assert set(os.listdir(lib)) == needed
    assert not [n for n in os.listdir(lib) if GLIBC_SONAME.match(n)]
    assert sorted(os.listdir(os.path.join(bundle["dir"], "bin"))) == ["forkctl", "forkd"]
    with open(os.path.join(bundle["dir"], "MANIFEST")) as f:
        manifest = f.read()
    assert {line[5:] for line in manifest.splitlines() if line.startswith("lib: ")} == needed
    assert re.search(r"^needs: GLIBC_2\.\d+ or newer", manifest, re.M), manifest


def test_binaries_and_libraries_look_only_inside_the_bundle(bundle):
    for name in ("forkd", "forkctl"):
        assert rpath_entries(os.path.join(bundle["dir"], "bin", name)) == [
            ("RPATH", "$ORIGIN/../lib")], name
    lib = os.path.join(bundle["dir"], "lib")
    for name in os.listdir(lib):
        assert rpath_entries(os.path.join(lib, name)) == [("RPATH", "$ORIGIN")], name
    # ldd on the fresh copy: every non-glibc library resolves into it.
    for name in ("forkd", "forkctl"):
        libs = non_glibc(ldd(os.path.join(bundle["dir"], "bin", name)))
        outside = {n: p for n, p in libs.items()
                   if p is None or os.path.normpath(p) != os.path.join(lib, n)}
        assert not outside, outside


def test_ld_library_path_to_the_system_copies_does_not_win(bundle):
    """An app image's LD_LIBRARY_PATH (conda, CUDA images set one) must not
    slip its libstdc++ or libssl under forkd: DT_RPATH comes first."""
    env = dict(os.environ, LD_LIBRARY_PATH=MULTIARCH + ":/usr/lib/x86_64-linux-gnu",
               LD_DEBUG="libs")
    r = subprocess.run([os.path.join(bundle["dir"], "bin", "forkd"), "--version"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("forkd ")
    loaded = loaded_libraries(r.stderr)
    assert loaded
    lib = os.path.join(bundle["dir"], "lib")
    strays = [p for p in loaded
              if not GLIBC_SONAME.match(os.path.basename(p)) and os.path.dirname(p) != lib
              and os.path.realpath(os.path.dirname(p)) != os.path.realpath(lib)]
    assert not strays, strays


# --- running from a root with nothing but glibc -----------------------------------------


def test_forkd_and_forkctl_run_in_a_root_with_only_glibc(glibc_root, bundle):
    bundled = set(os.listdir(os.path.join(bundle["dir"], "lib")))
    for dirpath, _, files in os.walk(glibc_root):
        if os.path.relpath(dirpath, glibc_root).split(os.sep)[0] == "forkd":
            continue
        assert not bundled & set(files), "a bundled library outside the bundle: %s" % dirpath
    r = subprocess.run(in_root(glibc_root, ["/forkd/bin/forkd", "--version"]),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.match(r"forkd \d+\.\d+\.\d+", r.stdout), r.stdout
    r = subprocess.run(in_root(glibc_root, ["/forkd/bin/forkctl", "--help"]),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "forkctl" in r.stdout + r.stderr


def test_control_the_root_without_the_bundle_fails(glibc_root):
    """The root really lacks the libraries: the unpatched binary cannot start there."""
    forkd = os.environ.get("FORKD_BIN") or os.path.join(REPO_DIR, "build", "forkd")
    shutil.copy2(forkd, os.path.join(glibc_root, "tmp", "forkd"))
    r = subprocess.run(in_root(glibc_root, ["/tmp/forkd", "--version"]),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "error while loading shared libraries" in r.stderr, r.stderr


def test_bundle_serves_the_example_app_from_a_root_with_only_glibc(glibc_root, bundle):
    run_dir = os.path.join(glibc_root, "run")
    app = ExampleApp(tmpdir=run_dir)
    port = free_port()
    log_path = os.path.join(glibc_root, "forkd.log")
    argv = in_root(glibc_root, [
        "/forkd/bin/forkd", "--bind", "127.0.0.1:%d" % port, "--upstream", "unix:/run/app.sock",
        "--admin-bind", "", "--metrics-bind", "", "--shutdown-delay", "0", "--workers", "2"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORKD_", "LD_"))}
    env.update(LD_DEBUG="libs", LD_DEBUG_OUTPUT="/ld/debug")
    proc = None
    app.start()
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)

        def hello():
            if proc.poll() is not None:
                raise StopWaiting("forkd exited with %s" % proc.returncode)
            status, _, body = http_get(port, "/hello", timeout=2)
            return (status, body) if status == 200 else None
        try:
            status, body = wait_until(hello, 20, what="forkd from the glibc-only root")
        except (StopWaiting, TimeoutError) as e:
            with open(log_path) as f:
                pytest.fail("%s\n%s" % (e, f.read()[-3000:]))
        assert body.startswith(b"hello"), body
        # Both workers done loading before TERM (one killed while the
        # loader runs would leave a short trace).
        wait_until(lambda: len(complete_traces(glibc_root)) >= 3, 20,
                   what="master and two workers' loader traces")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        app.stop()
    # One LD_DEBUG file per process that started from the binary: the
    # master and its workers (each re-executed, so each loaded its own).
    traces = {}
    for name in os.listdir(os.path.join(glibc_root, "ld")):
        with open(os.path.join(glibc_root, "ld", name)) as f:
            traces[name] = loaded_libraries(f.read())
    assert "debug.%d" % proc.pid in traces, sorted(traces)
    assert len(traces) >= 3, "master and two workers: %s" % sorted(traces)
    bundled = {"/forkd/bin/../lib/" + n for n in os.listdir(os.path.join(bundle["dir"], "lib"))}
    for name, loaded in traces.items():
        strays = [p for p in loaded
                  if p not in bundled and not GLIBC_SONAME.match(os.path.basename(p))]
        assert not strays, "%s loaded %s" % (name, strays)
    full = [n for n, loaded in traces.items() if ESSENTIAL <= loaded]
    assert "debug.%d" % proc.pid in full and len(full) >= 3, sorted(traces)
