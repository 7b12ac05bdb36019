"""A test host in a network namespace, so admin tests see a real remote peer.

    with NetnsHost() as host:
        forkd binds host.host_addr (the host side of a veth pair);
        host.run([...]) runs a command inside the namespace, whose address
        is host.peer_addr.

The namespace gets a veth pair with test addresses 10.200.X.1/24 and
fd00:200:X::1/64 (host side), 10.200.X.2/24 and fd00:200:X::2/64 (inside);
X comes from the pid so two runs do not collide. Nothing else on the host changes: no route beyond the pair's own
/24, no forwarding, no NAT. The namespace (and with it both ends of the
pair) is deleted on exit, also when the test fails. Needs root and
iproute2; without them it raises with the reason instead of skipping, since
CI runs as root and a skip would hide a lost test.
"""

import os
import shutil
import subprocess


def _ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True,
                          timeout=10, check=check)


class NetnsHost:
    def __init__(self):
        n = os.getpid() % 100000
        self.ns = "fkns%d" % n
        self.host_if = "fk%dh" % n
        self.peer_if = "fk%dn" % n
        subnet = 10 + os.getpid() % 240
        self.host_addr = "10.200.%d.1" % subnet
        self.peer_addr = "10.200.%d.2" % subnet
        self.host_addr6 = "fd00:200:%x::1" % subnet
        self.peer_addr6 = "fd00:200:%x::2" % subnet

    def __enter__(self):
        if os.geteuid() != 0:
            raise RuntimeError("the remote-peer admin tests need root to create a network "
                               "namespace (ip netns add); run them as root, as CI does")
        if shutil.which("ip") is None:
            raise RuntimeError("ip (iproute2) not installed: run scripts/install-deps.sh")
        self._cleanup()  # a namespace left by a killed earlier run
        try:
            _ip("netns", "add", self.ns)
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if,
                "netns", self.ns)
            _ip("addr", "add", self.host_addr + "/24", "dev", self.host_if)
            # nodad: usable at once, no duplicate address detection wait
            _ip("addr", "add", self.host_addr6 + "/64", "dev", self.host_if, "nodad")
            _ip("link", "set", self.host_if, "up")
            _ip("-n", self.ns, "addr", "add", self.peer_addr + "/24", "dev", self.peer_if)
            _ip("-n", self.ns, "addr", "add", self.peer_addr6 + "/64", "dev", self.peer_if,
                "nodad")
            _ip("-n", self.ns, "link", "set", self.peer_if, "up")
            _ip("-n", self.ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as e:
            self._cleanup()
            raise RuntimeError("cannot set up the test network namespace: %s: %s"
                               % (" ".join(e.cmd), e.stderr.strip())) from None
        return self

    def __exit__(self, *exc):
        self._cleanup()

    def _cleanup(self):
        # Deleting the namespace destroys the inner end, and a veth pair
        # goes with either end; the explicit link delete covers a pair whose
        # inner end never moved into the namespace.
        _ip("netns", "del", self.ns, check=False)
        _ip("link", "del", self.host_if, check=False)

    def run(self, cmd, timeout=60, **kw):
        """Runs cmd inside the namespace; returns CompletedProcess (text)."""
        return subprocess.run(["ip", "netns", "exec", self.ns] + list(cmd),
                              capture_output=True, text=True, timeout=timeout, **kw)
