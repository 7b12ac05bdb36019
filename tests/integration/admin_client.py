"""Clients of forkd's admin plane for the integration tests.

AdminClient is a real gRPC client: the Python message classes are generated
at import time with `protoc --python_out` from proto/forkd/admin/v1/admin.proto
into a temporary directory, and calls go through grpc's generic
channel.unary_unary / unary_stream with explicit (de)serializers (Debian's
python3-grpc-tools is too old to generate stubs). grpc.health.v1 and server
reflection use small copies of their public .proto files (the fields used
here, same numbers).

forkctl() runs the real forkctl binary. start_admin_forkd() starts forkd
with the admin API on a free loopback port.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

from forkd_harness import FORKCTL_BIN, REPO_DIR, free_port

_HEALTH_PROTO = """
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
"""

_REFLECTION_PROTO = """
syntax = "proto3";
package grpc.reflection.v1alpha;
message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_by_filename = 3;
    string file_containing_symbol = 4;
    string list_services = 7;
  }
}
message ServiceResponse { string name = 1; }
message ListServiceResponse { repeated ServiceResponse service = 1; }
message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }
message ErrorResponse { int32 error_code = 1; string error_message = 2; }
message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}
"""


def _generate():
    out = tempfile.mkdtemp(prefix="fkpb")
    atexit.register(shutil.rmtree, out, True)
    extra = os.path.join(out, "src")
    os.makedirs(extra)
    for name, text in (("forkd_test_health.proto", _HEALTH_PROTO),
                       ("forkd_test_reflection.proto", _REFLECTION_PROTO)):
        with open(os.path.join(extra, name), "w") as f:
            f.write(text)
    proto_dir = os.path.join(REPO_DIR, "proto")
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", out,
                    os.path.join(proto_dir, "forkd", "admin", "v1", "admin.proto")],
                   check=True)
    subprocess.run(["protoc", "-I", extra, "--python_out", out,
                    "forkd_test_health.proto", "forkd_test_reflection.proto"],
                   cwd=extra, check=True)
    sys.path.insert(0, out)


_generate()
from forkd.admin.v1 import admin_pb2 as pb  # noqa: E402
import forkd_test_health_pb2 as health_pb  # noqa: E402
import forkd_test_reflection_pb2 as reflection_pb  # noqa: E402

SERVING = health_pb.HealthCheckResponse.SERVING
NOT_SERVING = health_pb.HealthCheckResponse.NOT_SERVING


class AdminClient:
    """forkd.admin.v1.Admin, grpc.health.v1.Health and reflection over one channel.

    Failed calls raise grpc.RpcError (e.code(), e.details()).
    """

    def __init__(self, addr, token=None, timeout=30.0):
        self.addr = addr
        self.token = token
        self.timeout = timeout
        self.channel = grpc.insecure_channel(addr)

    def close(self):
        self.channel.close()

    def _metadata(self, token):
        token = self.token if token is None else token
        return [("authorization", "Bearer " + token)] if token else None

    def call(self, method, request, response_cls, timeout=None, token=None):
        fn = self.channel.unary_unary(
            "/forkd.admin.v1.Admin/" + method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_cls.FromString)
        return fn(request, timeout=timeout or self.timeout, metadata=self._metadata(token))

    # -- the RPCs --

    def status(self, **kw):
        return self.call("GetStatus", pb.GetStatusRequest(), pb.ServerStatus, **kw)

    def watch(self, interval_ms=100, timeout=None):
        fn = self.channel.unary_stream(
            "/forkd.admin.v1.Admin/WatchStatus",
            request_serializer=pb.WatchStatusRequest.SerializeToString,
            response_deserializer=pb.ServerStatus.FromString)
        return fn(pb.WatchStatusRequest(interval_ms=interval_ms), timeout=timeout,
                  metadata=self._metadata(None))

    def scale(self, count=None, delta=None, wait=False, timeout_ms=0, **kw):
        req = pb.ScaleWorkersRequest(wait=wait, timeout_ms=timeout_ms)
        if count is not None:
            req.count = count
        if delta is not None:
            req.delta = delta
        return self.call("ScaleWorkers", req, pb.ScaleWorkersResponse, **kw)

    def threads(self, n, wait=True, timeout_ms=0, **kw):
        return self.call("SetThreads", pb.SetThreadsRequest(threads=n, wait=wait,
                                                             timeout_ms=timeout_ms),
                         pb.SettingsResponse, **kw)

    def connections(self, n, wait=True, timeout_ms=0, **kw):
        return self.call("SetWorkerConnections",
                         pb.SetWorkerConnectionsRequest(worker_connections=n, wait=wait,
                                                        timeout_ms=timeout_ms),
                         pb.SettingsResponse, **kw)

    def reload(self, **kw):
        return self.call("Reload", pb.ReloadRequest(), pb.CommandResponse, **kw)

    def drain(self, **kw):
        return self.call("Drain", pb.DrainRequest(), pb.CommandResponse, **kw)

    def resume(self, **kw):
        return self.call("Resume", pb.ResumeRequest(), pb.CommandResponse, **kw)

    def shutdown(self, quick=False, **kw):
        return self.call("Shutdown", pb.ShutdownRequest(quick=quick), pb.CommandResponse, **kw)

    def kill(self, pid, **kw):
        return self.call("KillWorker", pb.KillWorkerRequest(pid=pid), pb.CommandResponse, **kw)

    # -- grpc.health.v1 and reflection --

    def health(self, service=""):
        fn = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb.HealthCheckResponse.FromString)
        return fn(health_pb.HealthCheckRequest(service=service), timeout=self.timeout).status

    def health_watch(self, service="", timeout=None):
        fn = self.channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=health_pb.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb.HealthCheckResponse.FromString)
        return fn(health_pb.HealthCheckRequest(service=service), timeout=timeout)

    def list_services(self):
        fn = self.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb.ServerReflectionResponse.FromString)
        responses = fn(iter([reflection_pb.ServerReflectionRequest(list_services="")]),
                       timeout=self.timeout)
        names = []
        for r in responses:
            names += [s.name for s in r.list_services_response.service]
        return sorted(names)


def forkctl(addr, *args, token_file=None, timeout=90):
    """Runs the real forkctl; returns CompletedProcess (text stdout/stderr)."""
    if not os.access(FORKCTL_BIN, os.X_OK):
        raise FileNotFoundError("forkctl binary not found: %s (set FORKCTL_BIN)" % FORKCTL_BIN)
    cmd = [FORKCTL_BIN, "--addr", addr]
    if token_file:
        cmd += ["--token-file", token_file]
    cmd += [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def start_admin_forkd(forkd_factory, upstream, args=(), host="127.0.0.1", **kw):
    """forkd with --admin-bind HOST:<free port>; sets fk.admin_addr (loopback)."""
    port = free_port()
    fk = forkd_factory(upstream, ["--admin-bind", "%s:%d" % (host, port)] + list(args), **kw)
    fk.admin_port = port
    fk.admin_addr = "127.0.0.1:%d" % port
    return fk


def task_count(pid):
    """Threads of pid, from /proc/PID/task (None when it is gone)."""
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return None

