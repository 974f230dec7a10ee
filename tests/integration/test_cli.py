"""The commands that make no container: --version, --help, spec, features."""
import json
import os
import re
import subprocess

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


def commands_in_help(run):
    """The command names `pea --help` lists."""
    out = run.ok("--help").out
    section = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in section.splitlines()]


def long_flags(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", text))


def man_text(name):
    with open(os.path.join(REPO, "man", name)) as f:
        return f.read().replace("\\-", "-")


@pytest.mark.pea_only
def test_every_command_has_help(run):
    commands = commands_in_help(run)
    assert {"create", "run", "exec", "checkpoint", "restore", "pod", "features"} <= set(commands)
    for command in commands:
        for flag in ("--help", "-h"):
            r = run(command, flag)
            assert r.code == 0 and r.err == "", f"{command} {flag}: {r.err}"
            assert r.out.startswith(f"Usage: pea {command}"), r.out


@pytest.mark.pea_only
def test_man_page_documents_every_command_and_flag(run):
    man = man_text("pea.8")
    missing = sorted(f for f in long_flags(run.ok("--help").out) if f not in man)
    for command in commands_in_help(run):
        assert re.search(rf"^\.SS .*\b{command}\b", man, re.M), f"man/pea.8 has no section for {command}"
        for flag in long_flags(run.ok(command, "--help").out):
            if flag not in man:
                missing.append(f"{command} {flag}")
    assert missing == [], f"flags printed by --help but missing from man/pea.8: {missing}"


@pytest.mark.pea_only
def test_bash_completion_is_installed_and_completes(tmp_path, runtime):
    build_dir = os.path.dirname(os.path.dirname(runtime))
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", build_dir, "--destdir", str(dest), "--no-rebuild", "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    prefix = subprocess.run(["meson", "introspect", "--buildoptions", build_dir], capture_output=True, text=True)
    options = {o["name"]: o["value"] for o in json.loads(prefix.stdout)}
    path = os.path.join(str(dest) + options["prefix"], options["datadir"], "bash-completion", "completions", "pea")
    assert os.path.isfile(path), sorted(str(p) for p in dest.rglob("*completion*"))
    script = f"""
        source {path}
        complete -p pea
        COMP_WORDS=({runtime} chec); COMP_CWORD=1; _pea; echo "commands: ${{COMPREPLY[*]}}"
        COMP_WORDS=({runtime} --sys); COMP_CWORD=1; _pea; echo "global: ${{COMPREPLY[*]}}"
        COMP_WORDS=({runtime} exec --pidfd); COMP_CWORD=2; _pea; echo "exec: ${{COMPREPLY[*]}}"
    """
    r = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["complete -F _pea pea", "commands: checkpoint", "global: --systemd-cgroup",
                                     "exec: --pidfd-socket"], r.stdout


@pytest.mark.pea_only
def test_bash_completion_offers_container_ids(run, bundle, cid):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    script = f"""
        source {os.path.join(REPO, "completions", "pea.bash")}
        COMP_WORDS=({run.runtime} --root {run.root} kill ""); COMP_CWORD=4; _pea; echo "${{COMPREPLY[*]}}"
        COMP_WORDS=({run.runtime} --root {run.root} kill {cid} SIGK); COMP_CWORD=5; _pea; echo "${{COMPREPLY[*]}}"
        COMP_WORDS=({run.runtime} --root {run.root} kill {cid} KI); COMP_CWORD=5; _pea; echo "${{COMPREPLY[*]}}"
    """
    r = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True)
    assert r.stdout.splitlines() == [cid, "SIGKILL", "KILL"], r.stdout + r.stderr
    run.ok("delete", "--force", cid)
