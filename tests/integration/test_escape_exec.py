"""`exec` racing the death of the container's init: the new process runs inside the container or not at all.

pea joins the container through the init's pidfd. Joining by /proc/PID/ns paths, a check that failed because the
init had just exited read as "already in that namespace", and the exec'd process ran in the host's namespaces.
"""
import os
import random
import re
import signal
import threading
import time

import pytest

import helpers

pytestmark = pytest.mark.pea_only

NAMESPACES = ("net", "mnt", "uts", "ipc", "cgroup", "pid")
# The same absolute path on the host and in the bundle's rootfs: an exec that lands in the host's mount namespace
# still runs, and its output shows where it ran.
LIST_NAMESPACES = ["/bin/busybox", "ls", "-l", "/proc/self/ns"]
NOT_RUNNING = ("container not running", "cannot exec in a stopped container")
EXECS = 250  # per variant: 500 in all
THREADS = 6
BUDGET = 40.0


def namespaces_of(pid):
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}


def listed_namespaces(out):
    """{name: link} from `ls -l /proc/self/ns` ("... net -> net:[4026531840]")."""
    return dict(re.findall(r"(\w+) -> (\w+:\[\d+\])", out))


def exec_until_stopped(run, cid, results, stop):
    """Exec the namespace listing into CID until an exec is refused (the init is gone) or STOP is set."""
    while not stop.is_set():
        r = run("exec", cid, *LIST_NAMESPACES, timeout=20)
        results.append(r)
        if r.code == 255:
            return


def check(result, container, host, own_pid_ns):
    """None when RESULT is one of the two allowed outcomes, else what went wrong."""
    seen = listed_namespaces(result.out)
    outside = sorted(ns for ns, link in seen.items() if ns in container and link != container[ns])
    if outside:
        on_host = [ns for ns in outside if seen[ns] == host[ns]]
        return (f"exec ran outside the container's {', '.join(outside)} namespaces (the host's: {', '.join(on_host)});"
                f" exit {result.code}, stderr {result.err.strip()!r}")
    if result.code == 0:
        missing = [ns for ns in NAMESPACES if ns not in seen]
        return f"exec printed no link for {missing}: {result.out!r}" if missing else None
    if result.code == 255:
        lines = result.err.splitlines()
        if len(lines) == 1 and any(words in lines[0] for words in NOT_RUNNING) and not result.out:
            return None
        return f"exec failed with {result.err!r} (stdout {result.out!r}), not one line saying it is not running"
    # The init's death takes a pid namespace down with everything in it, an exec'd process that joined it too.
    if own_pid_ns and result.code == 128 + signal.SIGKILL:
        return None
    return f"exec exited {result.code}: stdout {result.out!r}, stderr {result.err!r}"


@pytest.mark.parametrize("own_pid_ns", [True, False], ids=["pid-namespace", "host-pid-namespace"])
def test_exec_racing_the_init_never_lands_on_the_host(run, bundle, cid, own_pid_ns):
    """Containers in sequence; in each, threads exec without pause while the init is killed at a random moment.
    Without a pid namespace of its own the container's processes outlive its init, so a process that joined
    nothing would survive to show it."""
    if not own_pid_ns:
        bundle.config["linux"]["namespaces"] = [ns for ns in bundle.config["linux"]["namespaces"]
                                                if ns["type"] != "pid"]
    bundle.add_namespace("cgroup")
    bundle.args("peatest", "sleep", "100")
    host = namespaces_of("self")
    results, problems = [], []
    deadline = time.monotonic() + BUDGET
    rounds = 0
    while len(results) < EXECS and time.monotonic() < deadline:
        rounds += 1
        container_id = f"{cid}-{rounds}"
        run.ok("run", "--detach", "--bundle", bundle, container_id)
        pid = run.state(container_id)["pid"]
        container = namespaces_of(pid)
        assert all(container[ns] != host[ns] for ns in NAMESPACES if ns != "pid" or own_pid_ns), container
        if not own_pid_ns:
            del container["pid"]
        batch, stop = [], threading.Event()
        threads = [threading.Thread(target=exec_until_stopped, args=(run, container_id, batch, stop))
                   for _ in range(THREADS)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.005, 0.15))
        os.kill(pid, signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join()
        run.ok("delete", "--force", container_id)
        for r in batch:
            problem = check(r, container, host, own_pid_ns)
            if problem:
                problems.append(problem)
        results.extend(batch)
    escapes = [p for p in problems if p.startswith("exec ran outside")]
    summary = f"of {len(results)} execs over {rounds} containers"
    assert not escapes, f"{len(escapes)} {summary} left the container:\n" + "\n".join(escapes[:10])
    assert not problems, f"{len(problems)} {summary} failed otherwise:\n" + "\n".join(problems[:10])
    assert len(results) >= EXECS, f"only {len(results)} execs within {BUDGET}s"


def test_exec_joins_every_listed_namespace_and_no_other(run, bundle, cid, session_dir, work_dir, binaries,
                                                         test_mark):
    """Through the pidfd, the namespaces the config lists, new or by path, the user and time ones included; the
    unlisted ones stay the host's."""
    for d in (session_dir, work_dir):
        os.chmod(d, 0o711)  # the mapped root of the user namespace traverses to the rootfs
    first = helpers.Bundle(os.path.join(work_dir, "first"), binaries, test_mark)
    os.chmod(first.path, 0o711)
    for kind in ("user", "cgroup", "time"):
        first.add_namespace(kind)
    first.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    first.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    first.config["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0},
                                            "boottime": {"secs": 86400, "nanosecs": 0}}
    first.args("peatest", "sleep", "100")
    run.ok("run", "--detach", "--bundle", first, cid)
    first_pid = run.state(cid)["pid"]

    # The second leaves out ipc and cgroup, and joins the first's network and uts namespaces by path.
    bundle.config["linux"]["namespaces"] = [
        {"type": "pid"}, {"type": "mount"},
        {"type": "network", "path": f"/proc/{first_pid}/ns/net"},
        {"type": "uts", "path": f"/proc/{first_pid}/ns/uts"},
    ]
    bundle.args("peatest", "sleep", "100")
    run.ok("run", "--detach", "--bundle", bundle, cid + "-second")
    second_pid = run.state(cid + "-second")["pid"]

    kinds = ("pid", "net", "mnt", "ipc", "uts", "cgroup", "user", "time")
    for container, pid, unlisted in ((cid, first_pid, ()), (cid + "-second", second_pid, ("ipc", "cgroup", "user",
                                                                                          "time"))):
        seen = helpers.parse_kv(run.ok("exec", container, "peatest", "ns").out)
        for kind in kinds:
            assert seen[kind] == os.readlink(f"/proc/{pid}/ns/{kind}"), f"{container}: {kind}"
            if kind in unlisted:
                assert seen[kind] == os.readlink(f"/proc/self/ns/{kind}"), f"{container}: {kind} is not the host's"
            else:
                assert seen[kind] != os.readlink(f"/proc/self/ns/{kind}"), f"{container}: {kind} is the host's"
    run.ok("delete", "--force", cid + "-second")
    run.ok("delete", "--force", cid)
