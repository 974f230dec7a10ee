"""Pod start and teardown: `pea pod run` of a pod of 3 sleeping containers until its stderr shows the three
`started` events, then SIGTERM until it has exited (grace period 0: SIGKILL at once, as the peer's delete --force);
the peer: 4 `runc run -d` (a sleeping infra + 3 members joining its net/ipc/uts by /proc/PID/ns paths), then
4 `runc delete --force`. Also the resident size of pea-pause and of the pod's supervisor while it runs."""
import json
import os
import select
import shutil
import signal
import subprocess
import time

from benchlib import (Cleanup, median_ms, make_bundle, proc_pss_kib, proc_status_kib, quiet, state_root, timed_checked,
                      REPO)


def write_manifest(path, name, rootfs):
    containers = [{"name": c, "image": rootfs, "command": ["sleep", "1000"]} for c in ("a", "b", "c")]
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                   "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                            "containers": containers}}, f)


def _read_started(proc, want, timeout=30):
    """Read proc's stderr until `want` lines with ': started' came; the time that happened."""
    buf, seen, end = b"", 0, time.monotonic() + timeout
    fd = proc.stderr.fileno()
    while seen < want:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeError("pea pod run: containers did not start in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"pea pod run exited: {buf.decode(errors='replace')[-400:]}")
        buf += chunk
        seen = buf.count(b": started")
    return time.perf_counter()


def _drain(proc):
    try:
        while os.read(proc.stderr.fileno(), 65536):
            pass
    except OSError:
        pass


def bench_pea_pod(pea, work, rootfs, runs):
    root, data = state_root(work, "pod-state"), os.path.join(work, "pod-data")
    starts, stops, pause_rss, sup_rss, sup_pss = [], [], [], [], []
    cleanup = Cleanup()
    try:
        for i in range(runs):
            name = f"pb{os.getpid()}-{i}"
            manifest = os.path.join(work, f"{name}.json")
            write_manifest(manifest, name, rootfs)
            cleanup.push(quiet, [pea, "--root", root, "pod", "rm", "--force", name])
            t0 = time.perf_counter()
            proc = subprocess.Popen([pea, "--root", root, "pod", "run", "-f", manifest, "--data-root", data],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            cleanup.push(_kill_wait, proc)
            starts.append(_read_started(proc, 3) - t0)
            if i == 0:
                time.sleep(0.2)
                state = json.load(open(os.path.join(root, "pods", name, "pod.json")))
                infra = state["infra"]["pid"]
                pause_rss.append(proc_status_kib(infra))
                sup_rss.append(proc_status_kib(proc.pid))
                sup_pss.append(proc_pss_kib(proc.pid))
            t1 = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            _drain(proc)
            proc.wait()
            stops.append(time.perf_counter() - t1)
            cleanup.run()  # the pod rm --force (a no-op when the teardown worked) and the kill
            os.unlink(manifest)
    finally:
        cleanup.run()
    return {"start": median_ms(starts), "stop": median_ms(stops), "pause_rss": pause_rss[0],
            "supervisor_rss": sup_rss[0], "supervisor_pss": sup_pss[0]}


def _kill_wait(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _member_config(bundle, infra_pid):
    cfg = json.load(open(os.path.join(bundle, "config.json")))
    cfg["process"]["args"] = ["sleep", "1000"]
    cfg["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}] + [
        {"type": t, "path": f"/proc/{infra_pid}/ns/{f}"} for t, f in (("network", "net"), ("ipc", "ipc"),
                                                                      ("uts", "uts"))]
    return cfg


def bench_runc_pod(runc, work, runs):
    """4 runc run -d, members joining the infra's namespaces; then delete --force of the members and the infra."""
    root = state_root(work, "runc-pod-state")
    infra_b, member_b = os.path.join(work, "rp-infra"), os.path.join(work, "rp-member")
    make_bundle(infra_b, ["sleep", "1000"])
    make_bundle(member_b, ["sleep", "1000"])
    starts, stops = [], []
    ids = ["infra", "a", "b", "c"]
    cleanup = Cleanup()
    try:
        for _ in range(runs):
            for cid in ids:
                cleanup.push(quiet, [runc, "--root", root, "delete", "--force", cid])
            t0 = time.perf_counter()
            timed_checked([runc, "--root", root, "run", "-d", "--bundle", infra_b, "infra"])
            st = json.loads(subprocess.run([runc, "--root", root, "state", "infra"], capture_output=True,
                                           check=True).stdout)
            # The members' config names the infra's PID, known only now: writing it is part of the peer's work.
            cfg = _member_config(member_b, st["pid"])
            with open(os.path.join(member_b, "config.json"), "w") as f:
                json.dump(cfg, f)
            for cid in ids[1:]:
                timed_checked([runc, "--root", root, "run", "-d", "--bundle", member_b, cid])
            starts.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            for cid in reversed(ids):
                timed_checked([runc, "--root", root, "delete", "--force", cid])
            stops.append(time.perf_counter() - t1)
            cleanup.actions.clear()
    finally:
        cleanup.run()
    return {"start": median_ms(starts), "stop": median_ms(stops)}


def pod_rootfs(work):
    path = os.path.join(work, "pod-rootfs")
    if os.path.isdir(path):
        return path
    subprocess.run([os.path.join(REPO, "examples", "make-rootfs"), path], check=True)
    return path
