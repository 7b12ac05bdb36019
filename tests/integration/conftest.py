"""pytest fixtures for forkd's integration tests (helpers: forkd_harness.py).

Fixtures:
    tmp_short      a short /tmp directory (unix socket paths), removed after
    example_app    a started ExampleApp, stopped after the test
    forkd_bin      path of the forkd binary; skips when it was never built
                   and FORKD_BIN is unset, fails when FORKD_BIN names no file
    forkd_factory  make_forkd(upstream=None, args=(), **kw) -> started Forkd;
                   every one is stopped after the test
    forkd          Forkd with default settings in front of example_app
"""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import forkd_harness  # noqa: E402
from forkd_harness import ExampleApp, Forkd, short_tmpdir  # noqa: E402


@pytest.fixture
def tmp_short():
    path = short_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def example_app():
    app = ExampleApp()
    app.start()
    yield app
    app.cleanup()


@pytest.fixture
def forkd_bin():
    path = forkd_harness.FORKD_BIN
    if not os.access(path, os.X_OK):
        if os.environ.get("FORKD_BIN"):
            pytest.fail("FORKD_BIN=%s is not an executable file" % path)
        pytest.skip("forkd not built (%s); set FORKD_BIN" % path)
    return path


@pytest.fixture
def forkd_factory(forkd_bin):
    started = []

    def make_forkd(upstream=None, args=(), **kwargs):
        fk = Forkd(upstream, args, binary=forkd_bin, **kwargs)
        started.append(fk)
        return fk.start()

    yield make_forkd
    for fk in reversed(started):
        fk.cleanup()


@pytest.fixture
def forkd(forkd_factory, example_app):
    return forkd_factory(example_app)
