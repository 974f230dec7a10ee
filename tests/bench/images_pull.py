"""Pull of a ~100 MB image of five gzip layers (busybox, then four of 24 files of 1 MiB of random bytes:
incompressible, as binaries and media mostly are) from Debian's docker-registry on 127.0.0.1 over TLS with a CA
made here: `pea image pull` into an empty store, against `skopeo copy docker://... oci:DIR` followed by
`umoci unpack` (a pull and an unpacked rootfs without a store of one's own). Every sample starts from nothing on the
pulling side (a new store; a new layout and bundle); the registry's storage stays in the page cache after the
warm-up. Also shown: pea pulling the image again into the store that has it (the manifest is fetched, nothing
else), and `pea pod apply` of a pod of that just-pulled image until its container runs (apply returns once it has
started; the pod is removed before the next sample)."""
import json
import os
import shutil
import sys

from benchlib import REPO, Cleanup, median_ms, quiet, state_root, timed_checked

sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import registries as reg  # noqa: E402

LAYERS = 4
FILES_PER_LAYER = 24
MIB = 1 << 20


def make_image(root):
    """An OCI layout holding the image as "big"; returns (path, compressed bytes of its layers)."""
    layout = reg.Layout(os.path.join(root, "layout"))
    base, _ = reg.busybox_files("amd64")
    layers = [(base, "gzip")]
    for i in range(LAYERS):
        layers.append(({f"data/{i}/{k:02d}": os.urandom(MIB) for k in range(FILES_PER_LAYER)}, "gzip"))
    manifest = layout.image("amd64", layers)
    layout.tag(manifest, "big")
    blobs = os.path.join(layout.path, "blobs", "sha256")
    with open(os.path.join(blobs, manifest["digest"][7:])) as f:
        size = sum(layer["size"] for layer in json.load(f)["layers"])
    return layout.path, size


def bench_pull(pea, work, runs):
    for tool in ("skopeo", "umoci", "/usr/bin/docker-registry"):
        if not shutil.which(tool):
            raise RuntimeError(f"the pull section needs {tool} (apt-get install skopeo umoci docker-registry)")
    root = os.path.join(work, "pull")
    os.makedirs(root)
    cleanup = Cleanup()
    try:
        certs = reg.make_certs(root)
        layout, size = make_image(root)
        registry = reg.Registry(root, "registry", certs)
        cleanup.push(registry.stop)
        ref = f"{registry.host}/bench/big:1"
        reg.skopeo_copy(f"oci:{layout}:big", f"docker://{ref}", "--dest-cert-dir", certs["certs"],
                        "--preserve-digests", timeout=600)
        shutil.rmtree(layout)

        def pea_pull(data):
            return timed_checked([pea, "image", "pull", "-q", "--data-root", data, "--cert-dir", certs["certs"], ref])

        def peer_pull(n):
            oci, bundle = os.path.join(root, f"oci{n}"), os.path.join(root, f"bundle{n}")
            try:
                return (timed_checked(["skopeo", "--insecure-policy", "copy", "-q", "--src-cert-dir", certs["certs"],
                                       f"docker://{ref}", f"oci:{oci}:x"]) +
                        timed_checked(["umoci", "unpack", "--image", f"{oci}:x", bundle]))
            finally:
                shutil.rmtree(oci, ignore_errors=True)
                shutil.rmtree(bundle, ignore_errors=True)

        pod_root = state_root(work, "pull-pods")

        def pod_apply(data, n):
            """A pod of the image just pulled (IfNotPresent: nothing is fetched): apply until its container runs."""
            name = f"pull-bench-{n}"
            manifest = os.path.join(root, f"{name}.json")
            with open(manifest, "w") as f:
                json.dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                               {"name": "c", "image": ref, "imagePullPolicy": "IfNotPresent",
                                "command": ["busybox", "sleep", "300"]}]}}, f)
            try:
                return timed_checked([pea, "--root", pod_root, "pod", "apply", "-f", manifest, "--data-root", data])
            finally:
                quiet([pea, "--root", pod_root, "pod", "rm", "--force", name])

        pea_times, peer_times, again_times, pod_times = [], [], [], []
        for i in range(runs + 1):  # the first of each warms the caches and is not counted
            data = os.path.join(root, f"data{i}")
            try:
                t = pea_pull(data)
                again = pea_pull(data)
                pod = pod_apply(data, i)
            finally:
                shutil.rmtree(data, ignore_errors=True)
            p = peer_pull(i)
            if i > 0:
                pea_times.append(t)
                again_times.append(again)
                pod_times.append(pod)
                peer_times.append(p)
        return {"bytes": size, "layers": LAYERS + 1, "runs": runs, "pea": median_ms(pea_times),
                "peer": median_ms(peer_times), "again": median_ms(again_times), "pod": median_ms(pod_times)}
    finally:
        cleanup.run()
