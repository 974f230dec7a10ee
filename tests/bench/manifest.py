"""Manifest size: `pea pod apply` of one sleeping container whose manifest is mostly env entries (YAML, ~37 bytes
each, as `- {name: E000001, value: v1}`: the shape of issue 19's 3.6 MB manifest of 120,000 entries), at 10 KB,
100 KB, 1 MB and Kubernetes' object size limit (1.5 MiB); a 3.6 MB manifest is refused, over that limit. For each
size: the wall time of the apply (it returns once the container runs), the client's peak RSS (ru_maxrss by GNU
time) and pea-shim's VmRSS once the pod runs (medians), both net of the same pod with a minimal manifest, per byte
of manifest: the growth must be linear (time per MB and bytes per manifest byte about constant across sizes). The
client's peak must stay within CLIENT_TARGET times the manifest at every size; below 1 MB a few pages of noise weigh
as much as the manifest, so the minimal and the small sizes take SMALL_RUNS_FACTOR times the runs."""
import os
import subprocess
import tempfile
import time

from benchlib import Cleanup, median_ms, proc_status_kib, quiet, state_root

SIZES = (("10 KB", 10_000), ("100 KB", 100_000), ("1 MB", 1_000_000), ("1.5 MiB (limit)", 3 << 19))
OVER_LIMIT = ("3.6 MB", 3_600_000)
CLIENT_TARGET = 10  # issue 19: the client's peak at most 10x the manifest (net of a minimal pod)
SMALL_RUNS_FACTOR = 3


def write_manifest(path, name, rootfs, size):
    """A YAML manifest of at most `size` bytes (exactly, but for less than one entry): env entries to fill it."""
    head = (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n"
            f"  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: {rootfs}\n"
            f"    command: [sleep, '1000']\n    env:\n")
    parts, used, i = [head], len(head), 0
    while True:
        entry = f"    - {{name: E{i:06d}, value: v{i}}}\n"
        if used + len(entry) > size:
            break
        parts.append(entry)
        used += len(entry)
        i += 1
    with open(path, "w") as f:
        f.write("".join(parts))
    return used


def _apply(pea, root, data, manifest):
    """(wall seconds, client ru_maxrss KiB, exit code, stderr)."""
    with tempfile.NamedTemporaryFile("r") as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%M", pea, "--root", root, "pod", "apply", "-f",
                            manifest, "--data-root", data], stdout=subprocess.DEVNULL, stderr=err)
        t = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
        peak = out.read().split()
        return t, int(peak[-1]) if peak else None, p.returncode, text


def _shim_rss(root, name):
    import json
    with open(os.path.join(root, "pods", name, "pod.json")) as f:
        shim = json.load(f)["shim"]["pid"]
    time.sleep(0.3)  # the shim gives back what it freed once the pod has settled
    return proc_status_kib(shim)


def bench_manifest(pea, work, rootfs, runs):
    if not os.access("/usr/bin/time", os.X_OK):
        raise RuntimeError("needs GNU time (apt-get install time)")
    root, data = state_root(work, "manifest-state"), os.path.join(work, "manifest-data")
    cleanup = Cleanup()
    rows = []
    try:
        for label, size in (("minimal", 0),) + SIZES:
            name = f"mf{os.getpid()}-{size}"
            path = os.path.join(work, f"{name}.yaml")
            used = write_manifest(path, name, rootfs, size)
            times, peaks, rss = [], [], []
            for _ in range(runs * SMALL_RUNS_FACTOR if size < 1_000_000 else runs):
                cleanup.push(quiet, [pea, "--root", root, "pod", "rm", "--force", name])
                t, peak, code, err = _apply(pea, root, data, path)
                if code != 0:
                    raise RuntimeError(f"pod apply of {label}: exit {code}: {err}")
                times.append(t)
                peaks.append(peak)
                rss.append(_shim_rss(root, name))
                cleanup.run()
            rows.append({"label": label, "bytes": used, "apply_ms": median_ms(times),
                         "client_peak": sorted(peaks)[len(peaks) // 2], "shim_rss": sorted(rss)[len(rss) // 2]})
            os.unlink(path)
        label, size = OVER_LIMIT
        name = f"mf{os.getpid()}-over"
        path = os.path.join(work, f"{name}.yaml")
        used = write_manifest(path, name, rootfs, size)
        cleanup.push(quiet, [pea, "--root", root, "pod", "rm", "--force", name])
        t, peak, code, err = _apply(pea, root, data, path)
        rows.append({"label": label, "bytes": used, "refused": code != 0, "message": err, "apply_ms": t * 1000,
                     "client_peak": peak})
        os.unlink(path)
    finally:
        cleanup.run()
    base = rows[0]
    for r in rows[1:]:
        if r.get("refused") is None:
            r["client_per_byte"] = (r["client_peak"] - base["client_peak"]) * 1024 / r["bytes"]
            r["shim_per_byte"] = (r["shim_rss"] - base["shim_rss"]) * 1024 / r["bytes"]
            r["ms_per_mb"] = (r["apply_ms"] - base["apply_ms"]) / (r["bytes"] / 1e6)
            r["client_met"] = r["client_per_byte"] <= CLIENT_TARGET
    return {"base": base, "rows": rows[1:]}
