"""A small CRI (runtime.v1) client for the end-to-end tests: api.proto compiled at test time, gRPC over a unix socket.

api.proto is kubernetes/cri-api v0.25.0 (the version containerd 1.6 vendors). Its gogoproto options only steer the
Go generator; they are dropped from a copy in the build directory so that grpc_tools compiles it without gogo.proto.
"""
import importlib
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "api.proto")


def compile_api(outdir):
    """Compile api.proto into OUTDIR (python3 -m grpc_tools.protoc); returns the modules (api_pb2, api_pb2_grpc)."""
    os.makedirs(outdir, exist_ok=True)
    with open(PROTO) as f:
        text = f.read()
    text = re.sub(r'^import "github.com/gogo/protobuf/gogoproto/gogo.proto";\n', "", text, flags=re.M)
    text = re.sub(r"^option \(gogoproto\.[a-z_]+\) = +(true|false);\n", "", text, flags=re.M)
    assert "gogoproto" not in text, "api.proto uses gogoproto options the client does not know"
    with open(os.path.join(outdir, "api.proto"), "w") as f:
        f.write(text)
    p = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{outdir}", f"--python_out={outdir}",
                        f"--grpc_python_out={outdir}", os.path.join(outdir, "api.proto")],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"grpc_tools.protoc failed: {p.stderr}")
    sys.path.insert(0, outdir)
    try:
        pb2 = importlib.import_module("api_pb2")
        grpc_mod = importlib.import_module("api_pb2_grpc")
    finally:
        sys.path.remove(outdir)
    return pb2, grpc_mod


class Client:
    """RuntimeService and ImageService stubs on unix://SOCKET; every call has a deadline."""

    def __init__(self, socket_path, pb2, grpc_mod, timeout=60):
        import grpc
        self.grpc = grpc
        self.pb = pb2
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.runtime = grpc_mod.RuntimeServiceStub(self.channel)
        self.images = grpc_mod.ImageServiceStub(self.channel)

    def close(self):
        self.channel.close()

    def __getattr__(self, method):
        """client.RunPodSandbox(field=...) builds RunPodSandboxRequest(field=...) and calls the runtime service
        (deadline=SECONDS overrides the call's deadline; `timeout` is a field of some requests)."""
        request_type = getattr(self.pb, f"{method}Request", None)
        if request_type is None:
            raise AttributeError(method)
        stub = self.runtime if hasattr(self.runtime, method) else self.images

        def call(deadline=None, **fields):
            return getattr(stub, method)(request_type(**fields), timeout=deadline or self.timeout)
        return call
