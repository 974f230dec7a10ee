"""The commands that make no container: --version, --help, spec, features."""
import json
import os
import re

import pytest

from helpers import REPO


def pea_oci_version():
    with open(os.path.join(REPO, "include", "pea", "spec.h")) as f:
        return re.search(r'#define PEA_OCI_VERSION "([^"]+)"', f.read()).group(1)


def test_version(run):
    r = run.ok("--version")
    assert re.search(r"\bspec: \d+\.\d+\.\d+", r.out), r.out
    assert re.search(r"\blibseccomp: \d+\.\d+\.\d+", r.out), r.out


@pytest.mark.pea_only
def test_version_names_pea(run):
    r = run.ok("--version")
    assert r.out.startswith("pea version ")
    assert f"spec: {pea_oci_version()}" in r.out


def test_help_lists_the_commands(run):
    r = run.ok("--help")
    for command in ("create", "start", "run", "state", "kill", "delete", "list", "exec", "spec"):
        assert re.search(rf"^\s+{command}\b", r.out, re.M), f"--help does not list {command}"


def test_spec_writes_a_config_that_runs(run, bundle, cid):
    r = run("spec", "--bundle", bundle.path)
    assert r.code == 0, r.err
    with open(os.path.join(bundle.path, "config.json")) as f:
        config = json.load(f)
    assert config["root"]["path"] == "rootfs"
    assert config["process"]["terminal"] is True
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "echo spec-ok; peatest nnp"]
    config["process"]["env"].append(bundle.mark)
    bundle.config = config
    r = run("run", "--bundle", bundle, cid)
    assert (r.code, r.out) == (0, "spec-ok\nNoNewPrivs 1\n"), r.err


def test_spec_refuses_to_overwrite(run, bundle):
    bundle.save()
    before = open(os.path.join(bundle.path, "config.json")).read()
    r = run("spec", "--bundle", bundle.path)
    assert r.code != 0
    assert "config.json" in r.err
    assert open(os.path.join(bundle.path, "config.json")).read() == before


@pytest.mark.pea_only
def test_spec_contents(run, tmp_path):
    run.ok("spec", "--bundle", str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["ociVersion"] == pea_oci_version()
    assert config["process"]["args"] == ["sh"]
    assert config["process"]["cwd"] == "/"
    assert config["process"]["noNewPrivileges"] is True
    assert config["root"] == {"path": "rootfs", "readonly": True}
    caps = config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        assert sorted(caps[kind]) == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    namespaces = {ns["type"] for ns in config["linux"]["namespaces"]}
    assert {"pid", "network", "ipc", "uts", "mount"} <= namespaces
    destinations = [m["destination"] for m in config["mounts"]]
    assert destinations[:2] == ["/proc", "/dev"]
    assert {"/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"} <= set(destinations)
    assert "/proc/kcore" in config["linux"]["maskedPaths"]
    assert "/proc/sys" in config["linux"]["readonlyPaths"]


def test_features(run):
    r = run.ok("features")
    assert r.err == ""
    features = json.loads(r.out)
    assert re.match(r"^1\.\d+\.\d+", features["ociVersionMin"])
    assert re.match(r"^1\.\d+\.\d+", features["ociVersionMax"])
    assert set(features["hooks"]) >= {"prestart", "createRuntime", "createContainer", "startContainer",
                                      "poststart", "poststop"}
    assert {"bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec"} <= set(features["mountOptions"])
    linux = features["linux"]
    assert {"pid", "network", "mount", "ipc", "uts", "cgroup", "user"} <= set(linux["namespaces"])
    assert "CAP_KILL" in linux["capabilities"]
    assert linux["seccomp"]["enabled"] is True
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"} <= set(linux["seccomp"]["actions"])
    assert "SCMP_CMP_MASKED_EQ" in linux["seccomp"]["operators"]


@pytest.mark.pea_only
def test_features_pea(run):
    features = json.loads(run.ok("features").out)
    assert features["ociVersionMax"] == pea_oci_version()
    linux = features["linux"]
    assert set(linux["namespaces"]) == {"pid", "network", "mount", "ipc", "uts", "cgroup", "user", "time"}
    assert "SCMP_ARCH_X86_64" in linux["seccomp"]["archs"]
