"""Pods under pea-shim: `pea pod apply` of a pod of 3 until `pea pod ps` shows all running, and `pea pod rm`;
pea-shim's resident size per idle pod; density (100 pods of one sleeping container: memory added, time to start,
list and remove all); the log path (a container writing 200 MB to stdout through the shim into its CRI log file:
MB/s, and the shim's CPU time per MB from /proc/PID/stat)."""
import json
import os
import subprocess
import time

from benchlib import (Cleanup, descendants, median_ms, proc_cpu_seconds, proc_pss_kib, proc_status_kib, quiet,
                      state_root, timed_checked, wait_until)


class ShimPods:
    def __init__(self, pea, work, rootfs):
        self.pea, self.rootfs = pea, rootfs
        self.root, self.data = state_root(work, "shim-state"), os.path.join(work, "shim-data")
        self.work = work
        self.cleanup = Cleanup()

    def argv(self, *args):
        return [self.pea, "--root", self.root] + list(args)

    def manifest(self, name, containers, grace=0):
        path = os.path.join(self.work, f"{name}.json")
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": grace,
                                "containers": [{"name": c, "image": self.rootfs, "command": cmd}
                                               for c, cmd in containers]}}, f)
        return path

    def apply(self, name, containers):
        path = self.manifest(name, containers)
        self.cleanup.push(quiet, self.argv("pod", "rm", "--force", name))
        timed_checked(self.argv("pod", "apply", "-f", path, "--data-root", self.data))
        return path

    def ps(self, name):
        p = subprocess.run(self.argv("pod", "ps", "--output", "json", name), capture_output=True, text=True)
        return json.loads(p.stdout) if p.returncode == 0 else []

    def all_in(self, name, n, state):
        rows = self.ps(name)
        return len(rows) == n and all(r["state"] == state for r in rows)

    def pod_state(self, name):
        return json.load(open(os.path.join(self.root, "pods", name, "pod.json")))

    def remove(self, *names):
        timed_checked(self.argv("pod", "rm", "--force", *names))


SLEEP = ["sleep", "1000"]


def bench_apply(sp, runs):
    starts, stops, shim_rss, shim_pss = [], [], [], []
    for i in range(runs):
        name = f"sa{os.getpid()}-{i}"
        t0 = time.perf_counter()
        sp.apply(name, [(c, SLEEP) for c in ("a", "b", "c")])  # returns once they have started
        starts.append(time.perf_counter() - t0)
        if not sp.all_in(name, 3, "running"):
            raise RuntimeError(f"pod {name}: not all running: {sp.ps(name)}")
        if i == 0:
            time.sleep(0.3)
            shim = sp.pod_state(name)["shim"]["pid"]
            shim_rss.append(proc_status_kib(shim))
            shim_pss.append(proc_pss_kib(shim))
        t1 = time.perf_counter()
        sp.remove(name)
        stops.append(time.perf_counter() - t1)
        sp.cleanup.actions.pop()
    return {"start": median_ms(starts), "stop": median_ms(stops), "shim_rss": shim_rss[0], "shim_pss": shim_pss[0]}


def _mem_used_kib():
    info = {}
    for line in open("/proc/meminfo"):
        k, v = line.split(":")
        info[k] = int(v.split()[0])
    return info["MemTotal"] - info["MemAvailable"]


def bench_density(sp, count):
    """count pods of one sleeping container: time to apply all (until every one is running), pss/rss summed over
    every shim and its descendants (infra, container processes), MemAvailable's drop, `pod ls`, `pod rm` of all."""
    names = [f"d{os.getpid()}-{i}" for i in range(count)]
    quiet(["sync"])
    before = _mem_used_kib()
    t0 = time.perf_counter()
    for n in names:
        sp.apply(n, [("c", SLEEP)])  # returns once the container has started
    start = time.perf_counter() - t0
    for n in names:
        if not sp.all_in(n, 1, "running"):
            raise RuntimeError(f"pod {n} did not run: {sp.ps(n)}")
    time.sleep(1)
    after = _mem_used_kib()
    pss = rss = shim_pss = 0
    for n in names:
        shim = sp.pod_state(n)["shim"]["pid"]
        for pid in [shim] + descendants(shim):
            pss += proc_pss_kib(pid) or 0
            rss += proc_status_kib(pid) or 0
        shim_pss += proc_pss_kib(shim) or 0
    lst = median_ms([timed_checked(sp.argv("pod", "ls")) for _ in range(10)])
    t1 = time.perf_counter()
    sp.remove(*names)
    stop = time.perf_counter() - t1
    del sp.cleanup.actions[-count:]
    return {"count": count, "start": start * 1000, "list": lst, "stop": stop * 1000, "pss": pss, "rss": rss,
            "shim_pss": shim_pss, "meminfo": after - before}


def bench_logs(sp, megabytes=200):
    """One container writing `megabytes` MB (10^6 bytes) of 100-byte lines to stdout; from running to exited. The shim's CPU
    time is read from /proc/PID/stat (utime+stime, the shim alone) once the writer has exited."""
    name = f"lg{os.getpid()}"
    # 1 MB of 100-byte lines in the image, cat'ed `megabytes` times: ~1 GB/s into a pipe here, where busybox's
    # `yes | head` makes only ~120 MB/s and would measure itself.
    with open(os.path.join(sp.rootfs, "lines"), "w") as f:
        f.write(("x" * 99 + "\n") * 10000)
    cmd = ["sh", "-c", f"i=0; while [ $i -lt {megabytes} ]; do cat /lines; i=$((i+1)); done"]
    # The log files go to the data root's disk, which the density section's teardown of 100 pods leaves busy (this
    # disk discards freed blocks): start from a settled disk, as density does.
    quiet(["sync"])
    # Conservative both ways: the wall time includes the pod's start, the shim's CPU time its building the sandbox.
    t0 = time.perf_counter()
    sp.apply(name, [("w", cmd)])
    shim = sp.pod_state(name)["shim"]["pid"]
    if not wait_until(lambda: sp.all_in(name, 1, "exited"), 300, 0.005):
        raise RuntimeError(f"log writer did not finish: {sp.ps(name)}")
    elapsed = time.perf_counter() - t0
    cpu = proc_cpu_seconds(shim)
    peak_rss = proc_status_kib(shim, "VmHWM")
    logdir = os.path.join(sp.data, "pods", name, "logs")
    on_disk = sum(os.path.getsize(os.path.join(logdir, f)) for f in os.listdir(logdir))
    sp.remove(name)
    sp.cleanup.actions.pop()
    return {"mbps": megabytes / elapsed, "cpu_ms_per_mb": cpu * 1000 / megabytes, "elapsed": elapsed,
            "shim_hwm": peak_rss, "on_disk": on_disk}
