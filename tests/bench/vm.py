"""`run` of /bin/true by pea, crun and runc inside the VM harness (tests/vm/run-in-vm: qemu TCG, Debian's kernel,
cgroup v2 with every controller), where crun runs too: it refuses this host's hybrid cgroups. One boot; the guest
script is vm-run.sh (busybox sh), the bundle is benchlib's config.json over a busybox root in the guest's tmpfs. The
guest prints raw samples; the medians are taken here. Nothing is left on the host: the shared directory is a temp
dir removed at the end, and run-in-vm kills qemu when it exits (also on Ctrl-C or SIGTERM)."""
import json
import os
import shutil
import statistics
import subprocess
import tempfile

from benchlib import REPO, bundle_config

RUN_IN_VM = os.path.join(REPO, "tests", "vm", "run-in-vm")
GUEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vm-run.sh")
# The guest mounts tmpfs on these (tests/vm/guest-init): host files under them are not visible there.
GUEST_TMPFS = ("/tmp", "/run", "/var/tmp", "/root")


def hidden_in_guest(path):
    return any(path == d or path.startswith(d + "/") for d in GUEST_TMPFS)


def parse(out):
    """The guest's "vm-bench: ..." lines: facts, samples (ns) per runtime, errors and leftovers."""
    res = {"facts": {}, "versions": {}, "run": {}, "start": {}, "errors": [], "left": []}
    for line in out.splitlines():
        if not line.startswith("vm-bench: "):
            continue
        key, _, rest = line[len("vm-bench: "):].partition(" ")
        if key in ("sample", "version-sample"):
            name, ns = rest.split()
            res["run" if key == "sample" else "start"].setdefault(name, []).append(int(ns) / 1e9)
        elif key == "version":
            name, _, v = rest.partition(" ")
            res["versions"][name] = v
        elif key == "error":
            res["errors"].append(rest)
        elif key == "left" or (key == "cgroups-left" and rest != "0"):
            res["left"].append(f"{key} {rest}")
        else:
            res["facts"][key] = rest
    return res


def bench_run(runtimes, runs, timeout=None):
    """runtimes: [(name, binary)]. Returns the parsed result with "median" (ms per runtime, run) and "start_median"
    (ms, `--version`); raises if the VM did not run the script, or a run failed."""
    share = tempfile.mkdtemp(prefix="pea-bench-vm-")
    try:
        specs = []
        for name, binary in runtimes:
            binary = os.path.realpath(binary)
            if hidden_in_guest(binary):  # a build dir under /tmp: hand the binary over through the share
                dest = os.path.join(share, name)
                shutil.copy2(binary, dest)
                binary = dest
            specs.append(f"{name}={binary}")
        shutil.copy2(GUEST, os.path.join(share, "vm-run.sh"))
        with open(os.path.join(share, "config.json"), "w") as f:
            json.dump(bundle_config(["/bin/true"]), f)
        env = dict(os.environ)
        # The initramfs cache the VM tests use, not one per (temporary) share.
        env.setdefault("PEA_VM_CACHE", os.path.join(REPO, ".pea-vm-cache"))
        command = f"/bin/busybox sh {share}/vm-run.sh {share}/config.json {runs} {' '.join(specs)}"
        timeout = timeout or 120 + 6 * runs * len(runtimes)
        p = subprocess.Popen([RUN_IN_VM, "--timeout", str(timeout), "--share", share, "--", command],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            out, _ = p.communicate()
        except BaseException:
            p.terminate()  # run-in-vm's EXIT trap kills qemu and removes its run dir
            p.wait()
            raise
    finally:
        shutil.rmtree(share, ignore_errors=True)
    res = parse(out)
    if p.returncode != 0 or res["errors"] or not res["run"]:
        tail = "\n".join(out.splitlines()[-20:])
        raise RuntimeError(f"vm: run-in-vm exit {p.returncode}; {'; '.join(res['errors'])}\n{tail}")
    res["n"] = min(len(s) for s in res["run"].values())
    res["median"] = {k: statistics.median(v) * 1000 for k, v in res["run"].items()}
    res["start_median"] = {k: statistics.median(v) * 1000 for k, v in res["start"].items()}
    return res


def qemu_version():
    try:
        p = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True)
        return p.stdout.split("\n")[0].replace("QEMU emulator version ", "qemu ")
    except FileNotFoundError:
        return "qemu ?"
