"""A small CRI (runtime.v1) client for the end-to-end tests: runtime_v1.proto compiled at test time, gRPC over a
unix socket."""
import importlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = "runtime_v1.proto"


def compile_api(outdir):
    """Compile runtime_v1.proto into OUTDIR (python3 -m grpc_tools.protoc); returns the modules (pb2, pb2_grpc)."""
    os.makedirs(outdir, exist_ok=True)
    p = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE}", f"--python_out={outdir}",
                        f"--grpc_python_out={outdir}", os.path.join(HERE, PROTO)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"grpc_tools.protoc failed: {p.stderr}")
    sys.path.insert(0, outdir)
    try:
        pb2 = importlib.import_module("runtime_v1_pb2")
        grpc_mod = importlib.import_module("runtime_v1_pb2_grpc")
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
