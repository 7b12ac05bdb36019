"""Admin calls from inside a test network namespace (see netns_host.py).

    ip netns exec NS python3 remote_admin.py ADDR CALLS_JSON

CALLS_JSON is a list of [call, token] pairs (token null for none); call is
one of status, health, scale3, drain, resume, reload, shutdown. Prints one
JSON object per call: {"call", "code" (grpc status name, "OK" on success),
"details", "value"}.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

from admin_client import AdminClient  # noqa: E402

CALLS = {
    "status": lambda c, kw: c.status(**kw).desired_workers,
    "health": lambda c, kw: c.health(""),
    "scale3": lambda c, kw: c.scale(count=3, wait=True, **kw).reached,
    "drain": lambda c, kw: c.drain(**kw).message,
    "resume": lambda c, kw: c.resume(**kw).message,
    "reload": lambda c, kw: c.reload(**kw).message,
    "shutdown": lambda c, kw: c.shutdown(quick=True, **kw).message,
}


def main():
    addr, calls = sys.argv[1], json.loads(sys.argv[2])
    client = AdminClient(addr, timeout=15)
    for name, token in calls:
        kw = {"token": token} if token else {}
        try:
            value = CALLS[name](client, kw)
            out = {"call": name, "code": "OK", "details": "", "value": value}
        except grpc.RpcError as e:
            out = {"call": name, "code": e.code().name, "details": e.details(), "value": None}
        print(json.dumps(out), flush=True)
    client.close()


if __name__ == "__main__":
    main()
