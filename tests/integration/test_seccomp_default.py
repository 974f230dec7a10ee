"""pea's RuntimeDefault seccomp profile, as `pea spec` writes it: busybox runs; each dangerous family gets EPERM."""
import json
import os

import pytest

from helpers import SECCOMP_CACHE_ENV

pytestmark = pytest.mark.pea_only

BLOCKED = ["mount", "unshare", "keyctl", "add_key", "bpf", "ptrace", "perf_event_open", "userfaultfd",
           "init_module", "kexec_load", "open_by_handle_at", "reboot", "swapon", "clock_settime", "iopl",
           "pivot_root", "setns"]


def default_profile_bundle(run, bundle, script):
    run.ok("spec", "--bundle", bundle.path)
    with open(os.path.join(bundle.path, "config.json")) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["root"]["readonly"] = False
    config["process"]["args"] = ["sh", "-c", script]
    config["process"]["env"].append(bundle.mark)
    # Root privileges inside, so that only the profile (not missing capabilities) can be what refuses.
    all_caps = ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_SYS_RAWIO",
                "CAP_SYSLOG", "CAP_IPC_LOCK", "CAP_BPF", "CAP_PERFMON", "CAP_KILL", "CAP_CHOWN", "CAP_SETUID",
                "CAP_SETGID", "CAP_MKNOD", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind] = all_caps
    bundle.config = config


def test_busybox_workload_runs_under_the_default_profile(run, bundle, cid):
    default_profile_bundle(run, bundle, "mkdir /tmp/d && echo hi > /tmp/d/f && cat /tmp/d/f | wc -c && "
                                        "(sleep 0.1 &) && ls / >/dev/null && echo done; peatest seccomp")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, r.err
    assert r.out.splitlines()[:2] == ["3", "done"]
    assert "Seccomp 2" in r.out


def test_each_dangerous_family_gets_eperm(run, bundle, cid):
    script = "; ".join(f"echo {name} $(peatest syscall {name})" for name in BLOCKED + ["getpid", "personality"])
    default_profile_bundle(run, bundle, script)
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, r.err
    results = dict(line.split(" ", 1) for line in r.out.splitlines())
    for name in BLOCKED:
        assert results[name] == "EPERM", f"{name}: {results[name]}"
    assert results["getpid"] == "ok"
    assert results["personality"] == "ok", "querying the personality is a safe value"


def test_the_compiled_profile_is_kept_for_the_next_container(run, bundle, cid):
    """The first container's profile is compiled and stored in pea's cache directory; the next loads it (the entry
    is not written again) and is confined the same; a damaged entry is compiled over; a store others could write is
    not used."""
    script = "; ".join(f"echo {name} $(peatest syscall {name})" for name in BLOCKED + ["getpid"])
    default_profile_bundle(run, bundle, script)

    def run_confined(name):
        r = run("run", "--bundle", bundle, name)
        assert r.code == 0, r.err
        results = dict(line.split(" ", 1) for line in r.out.splitlines())
        assert {n: results[n] for n in BLOCKED} == {n: "EPERM" for n in BLOCKED}
        assert results["getpid"] == "ok"

    store = run.env[SECCOMP_CACHE_ENV]

    def entry():
        names = os.listdir(store)
        assert len(names) == 1 and names[0].endswith(".bpf"), names
        st = os.stat(os.path.join(store, names[0]))
        assert st.st_mode & 0o777 == 0o600
        return os.path.join(store, names[0]), st.st_ino

    run_confined(f"{cid}-1")
    assert os.stat(store).st_mode & 0o777 == 0o700
    path, inode = entry()
    run_confined(f"{cid}-2")
    assert entry() == (path, inode), "loaded, not compiled and stored again"

    os.truncate(path, os.path.getsize(path) - 4)  # half an instruction gone
    run_confined(f"{cid}-3")
    path2, inode2 = entry()
    assert path2 == path and inode2 != inode, "a damaged entry is replaced"

    os.chmod(store, 0o770)
    os.unlink(path)
    run_confined(f"{cid}-4")
    assert os.listdir(store) == [], "nothing kept where others could write"
