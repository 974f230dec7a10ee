"""Capabilities, no_new_privs, rlimits and seccomp as the container process sees them."""
import re

import pytest

from helpers import parse_kv

CAP_KILL = 1 << 5
CAP_NET_BIND_SERVICE = 1 << 10
CAP_AUDIT_WRITE = 1 << 29


def run_peatest(run, bundle, cid, *args):
    bundle.args("peatest", *args)
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, f"exit {r.code}: {r.err}"
    return r.out


def caps_of(out):
    return {k: int(v, 16) for k, v in parse_kv(out).items()}


def set_caps(bundle, **sets):
    bundle.process["capabilities"] = {kind: list(names) for kind, names in sets.items()}


def test_default_capabilities(run, bundle, cid):
    caps = caps_of(run_peatest(run, bundle, cid, "caps"))
    default = CAP_KILL | CAP_NET_BIND_SERVICE | CAP_AUDIT_WRITE
    assert caps["CapBnd"] == caps["CapPrm"] == caps["CapEff"] == default
    assert caps["CapInh"] == 0


def test_only_cap_kill(run, bundle, cid):
    set_caps(bundle, bounding=["CAP_KILL"], effective=["CAP_KILL"], permitted=["CAP_KILL"])
    caps = caps_of(run_peatest(run, bundle, cid, "caps"))
    assert caps == {"CapInh": 0, "CapPrm": CAP_KILL, "CapEff": CAP_KILL, "CapBnd": CAP_KILL, "CapAmb": 0}


def test_ambient_capability_for_a_non_root_user(run, bundle, cid):
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    set_caps(bundle, bounding=["CAP_KILL"], effective=["CAP_KILL"], permitted=["CAP_KILL"],
             inheritable=["CAP_KILL"], ambient=["CAP_KILL"])
    caps = caps_of(run_peatest(run, bundle, cid, "caps"))
    assert caps == {"CapInh": CAP_KILL, "CapPrm": CAP_KILL, "CapEff": CAP_KILL, "CapBnd": CAP_KILL,
                    "CapAmb": CAP_KILL}


def test_non_root_user_without_ambient_has_no_effective_caps(run, bundle, cid):
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    set_caps(bundle, bounding=["CAP_KILL"], effective=["CAP_KILL"], permitted=["CAP_KILL"])
    caps = caps_of(run_peatest(run, bundle, cid, "caps"))
    assert caps["CapEff"] == 0 and caps["CapBnd"] == CAP_KILL


def test_missing_capabilities_deny_privileged_operations(run, bundle, cid):
    out = run_peatest(run, bundle, cid, "rawsock")
    assert out == "EPERM\n"
    assert run_peatest(run, bundle, cid + "-2", "mount") == "EPERM\n"


def test_granted_capability_allows_the_operation(run, bundle, cid):
    set_caps(bundle, bounding=["CAP_NET_RAW"], effective=["CAP_NET_RAW"], permitted=["CAP_NET_RAW"])
    assert run_peatest(run, bundle, cid, "rawsock") == "ok\n"


@pytest.mark.parametrize("value", [True, False])
def test_no_new_privileges(run, bundle, cid, value):
    bundle.process["noNewPrivileges"] = value
    assert run_peatest(run, bundle, cid, "nnp") == f"NoNewPrivs {int(value)}\n"


def test_rlimits(run, bundle, cid):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                 {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    assert run_peatest(run, bundle, cid, "rlimit", "NOFILE") == "NOFILE 123 456\n"
    assert run_peatest(run, bundle, cid + "-2", "rlimit", "CORE") == "CORE 0 0\n"


def seccomp_profile(*rules, default="SCMP_ACT_ALLOW"):
    return {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": list(rules)}


def probe(run, bundle, cid, *syscalls):
    bundle.args("sh", "-c", "; ".join(f"peatest syscall {s}" for s in syscalls) + "; peatest seccomp")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, f"exit {r.code}: {r.err}"
    lines = r.out.splitlines()
    return lines[:-1], lines[-1]


def test_seccomp_blocks_mkdir_with_eperm(run, bundle, cid):
    bundle.config["linux"]["seccomp"] = seccomp_profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    results, status = probe(run, bundle, cid, "mkdir", "getcwd")
    assert results == ["EPERM", "ok"]
    assert status == "Seccomp 2"


def test_seccomp_errno_ret(run, bundle, cid):
    bundle.config["linux"]["seccomp"] = seccomp_profile(
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
    assert probe(run, bundle, cid, "mkdir")[0] == ["ENOSYS"]


def x86_64_syscall_names():
    with open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h") as f:
        return re.findall(r"^#define __NR_(\w+) \d+$", f.read(), re.M)


def test_seccomp_default_errno_ret(run, bundle, cid):
    """defaultErrnoRet (OCI 1.0.2) sets the errno of the default action: here everything but mkdir is allowed."""
    profile = seccomp_profile(default="SCMP_ACT_ERRNO")
    profile["defaultErrnoRet"] = 95
    allowed = [name for name in x86_64_syscall_names() if name not in ("mkdir", "mkdirat")]
    profile["syscalls"] = [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
    bundle.config["linux"]["seccomp"] = profile
    assert probe(run, bundle, cid, "mkdir", "getcwd")[0] == ["EOPNOTSUPP", "ok"]


@pytest.mark.parametrize("value,expected", [(0xFFFFFFFF, "EPERM"), (0, "ok")], ids=["matching", "other"])
def test_seccomp_argument_filter(run, bundle, cid, value, expected):
    bundle.config["linux"]["seccomp"] = seccomp_profile(
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
    assert probe(run, bundle, cid, "personality")[0] == [expected]


def test_seccomp_masked_eq_filter(run, bundle, cid):
    bundle.config["linux"]["seccomp"] = seccomp_profile(
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 0xFF, "valueTwo": 0xFF, "op": "SCMP_CMP_MASKED_EQ"}]})
    assert probe(run, bundle, cid, "personality", "getcwd")[0] == ["EPERM", "ok"]


def test_seccomp_skips_unknown_syscall_names(run, bundle, cid):
    bundle.config["linux"]["seccomp"] = seccomp_profile(
        {"names": ["mkdir", "no_such_syscall_pea"], "action": "SCMP_ACT_ERRNO"})
    assert probe(run, bundle, cid, "mkdir")[0] == ["EPERM"]


def test_seccomp_kill_process(run, bundle, cid):
    bundle.config["linux"]["seccomp"] = seccomp_profile({"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"})
    bundle.config["linux"]["namespaces"] = [ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "pid"]
    bundle.args("peatest", "syscall", "mkdir")
    assert run("run", "--bundle", bundle, cid).code == 128 + 31  # SIGSYS
