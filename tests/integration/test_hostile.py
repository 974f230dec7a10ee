"""Hostile and malformed input: every case exits 1 with one line "pea: ...", never crashes or hangs, and leaves
no state dir, cgroup, process or mount behind."""
import json
import os
import threading

import pytest

import helpers

pytestmark = pytest.mark.pea_only  # the words and the exit status are pea's contract, not runc's

MiB = 1 << 20
PLACEHOLDER = "@@HOSTILE@@"


def assert_clean_failure(r, *words):
    """Exit 1 (not a signal, not a crash), one line on stderr that starts with "pea: " and names WORDS."""
    assert r.code == 1, f"exit {r.code}: {r.err[:400]!r}"
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {r.err[:400]!r}"
    assert lines[0].startswith("pea: "), lines[0][:200]
    for word in words:
        assert word in lines[0], f"{word!r} not named in {lines[0][:300]!r}"
    return lines[0]


@pytest.fixture
def fails_cleanly(run, bundle, cid, assert_no_leaks):
    """fails_cleanly(*words, cid=...): create with the bundle as it is on disk; it must fail cleanly."""
    def check(*words, container_id=cid, timeout=10):
        r = run("create", "--bundle", bundle.path, container_id, timeout=timeout)
        line = assert_clean_failure(r, *words)
        assert_no_leaks()
        assert helpers.marked_cgroups(cid) == [], "cgroup left behind"
        return line
    return check


def write_text(bundle, text):
    with open(os.path.join(bundle.path, "config.json"), "w") as f:
        f.write(text)


def with_placeholder(bundle, set_value, raw):
    """Save the config with PLACEHOLDER at a field (set_value puts it there), then splice in RAW JSON text."""
    set_value(bundle.config, PLACEHOLDER)
    write_text(bundle, json.dumps(bundle.config).replace(json.dumps(PLACEHOLDER), raw))


def setter(*path):
    """A function that sets config[path...] = value, creating objects on the way."""
    def set_value(config, value):
        node = config
        for key in path[:-1]:
            if isinstance(node, dict):
                node = node.setdefault(key, {})
            else:
                node = node[key]
        node[path[-1]] = value
    return set_value


def deleter(*path):
    def delete(config, _value=None):
        node = config
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return delete


# (id, where, value, words the error must name). WHERE is a setter; VALUE is put there as is.
WRONG_TYPES = [
    ("ociVersion-number", setter("ociVersion"), 1, ["ociVersion"]),
    ("root-string", setter("root"), "rootfs", ["root"]),
    ("root.path-array", setter("root", "path"), [], ["root.path"]),
    ("root.readonly-string", setter("root", "readonly"), "no", ["root.readonly"]),
    ("process-array", setter("process"), [], ["process"]),
    ("process.args-numbers", setter("process", "args"), [1, 2], ["process.args"]),
    ("process.args-null-element", setter("process", "args"), ["sh", None], ["process.args"]),
    ("process.env-string", setter("process", "env"), "A=B", ["process.env"]),
    ("process.env-number-element", setter("process", "env"), [1], ["process.env"]),
    ("process.cwd-object", setter("process", "cwd"), {}, ["process.cwd"]),
    ("process.user-string", setter("process", "user"), "root", ["process.user"]),
    ("process.user.uid-string", setter("process", "user", "uid"), "0", ["process.user.uid"]),
    ("process.user.uid-negative", setter("process", "user", "uid"), -1, ["process.user.uid"]),
    ("process.user.uid-huge", setter("process", "user", "uid"), 1 << 40, ["process.user.uid"]),
    ("process.user.uid-float", setter("process", "user", "uid"), 1.5, ["process.user.uid"]),
    ("process.user.additionalGids-strings", setter("process", "user", "additionalGids"), ["x"],
     ["process.user.additionalGids"]),
    ("process.capabilities-array", setter("process", "capabilities"), ["CAP_KILL"], ["process.capabilities"]),
    ("process.capabilities.bounding-string", setter("process", "capabilities", "bounding"), "CAP_KILL",
     ["process.capabilities.bounding"]),
    ("process.capabilities.bounding-unknown", setter("process", "capabilities", "bounding"), ["CAP_BOGUS"],
     ["CAP_BOGUS"]),
    ("process.rlimits-object", setter("process", "rlimits"), {}, ["process.rlimits"]),
    ("process.rlimits-unknown-type", setter("process", "rlimits"), [{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}],
     ["RLIMIT_BOGUS"]),
    ("process.rlimits-soft-string", setter("process", "rlimits"), [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": "1"}],
     ["process.rlimits"]),
    ("process.oomScoreAdj-string", setter("process", "oomScoreAdj"), "5", ["process.oomScoreAdj"]),
    ("process.oomScoreAdj-out-of-range", setter("process", "oomScoreAdj"), 5000, ["process.oomScoreAdj"]),
    ("process.noNewPrivileges-number", setter("process", "noNewPrivileges"), 1, ["process.noNewPrivileges"]),
    ("process.consoleSize-string", setter("process", "consoleSize"), "80x24", ["process.consoleSize"]),
    ("hostname-number", setter("hostname"), 5, ["hostname"]),
    ("mounts-object", setter("mounts"), {}, ["mounts"]),
    ("mounts-string-element", setter("mounts"), ["proc"], ["mounts"]),
    ("mounts.destination-number", setter("mounts"), [{"destination": 5, "type": "tmpfs"}], ["mounts", "destination"]),
    ("mounts.options-string", setter("mounts"), [{"destination": "/x", "type": "tmpfs", "options": "ro"}],
     ["mounts", "options"]),
    ("mounts.options-number-element", setter("mounts"), [{"destination": "/x", "type": "tmpfs", "options": [5]}],
     ["mounts", "options"]),
    ("linux-array", setter("linux"), [], ["linux"]),
    ("linux.namespaces-object", setter("linux", "namespaces"), {}, ["linux.namespaces"]),
    ("linux.namespaces-string-element", setter("linux", "namespaces"), ["pid", "mount"], ["linux.namespaces"]),
    ("linux.namespaces.type-number", setter("linux", "namespaces"), [{"type": 5}, {"type": "mount"}],
     ["linux.namespaces"]),
    ("linux.uidMappings-string", setter("linux", "uidMappings"), "0 0 1", ["linux.uidMappings"]),
    ("linux.resources-array", setter("linux", "resources"), [], ["linux.resources"]),
    ("linux.resources.memory.limit-string", setter("linux", "resources", "memory"), {"limit": "1G"},
     ["linux.resources.memory.limit"]),
    ("linux.resources.pids.limit-string", setter("linux", "resources", "pids"), {"limit": "x"},
     ["linux.resources.pids.limit"]),
    ("linux.resources.devices-object", setter("linux", "resources", "devices"), {}, ["linux.resources.devices"]),
    ("linux.sysctl-array", setter("linux", "sysctl"), [], ["linux.sysctl"]),
    ("linux.sysctl-number-value", setter("linux", "sysctl"), {"net.ipv4.ip_forward": 1}, ["linux.sysctl"]),
    ("linux.maskedPaths-string", setter("linux", "maskedPaths"), "/proc/kcore", ["linux.maskedPaths"]),
    ("linux.readonlyPaths-number-element", setter("linux", "readonlyPaths"), [7], ["linux.readonlyPaths"]),
    ("linux.devices-bad-type", setter("linux", "devices"), [{"path": "/dev/x", "type": "x", "major": 1, "minor": 1}],
     ["linux.devices"]),
    ("linux.seccomp-string", setter("linux", "seccomp"), "default", ["linux.seccomp"]),
    ("linux.seccomp.syscalls.names-string", setter("linux", "seccomp"),
     {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "mkdir", "action": "SCMP_ACT_ERRNO"}]},
     ["linux.seccomp"]),
    ("hooks-array", setter("hooks"), [], ["hooks"]),
    ("hooks.prestart-object", setter("hooks", "prestart"), {}, ["hooks.prestart"]),
    ("hooks.prestart.path-number", setter("hooks", "prestart"), [{"path": 5}], ["hooks.prestart"]),
    ("annotations-array", setter("annotations"), [], ["annotations"]),
    ("annotations-number-value", setter("annotations"), {"x": 5}, ["annotations"]),
]


@pytest.mark.parametrize("where,value,words", [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES])
def test_wrong_type(bundle, fails_cleanly, where, value, words):
    where(bundle.config, value)
    bundle.save()
    fails_cleanly(*words)


MISSING = [
    ("ociVersion", deleter("ociVersion"), ["ociVersion"]),
    ("root", deleter("root"), ["root"]),
    ("root.path", deleter("root", "path"), ["root.path"]),
    ("process", deleter("process"), ["process"]),
    ("process.cwd", deleter("process", "cwd"), ["process.cwd"]),
    ("mounts.destination", lambda c: c["mounts"].append({"type": "tmpfs", "source": "tmpfs"}), ["destination"]),
    ("linux.namespaces.type", lambda c: c["linux"]["namespaces"].append({"path": "/proc/self/ns/ipc"}),
     ["linux.namespaces"]),
    ("linux.namespaces.mount", lambda c: c["linux"].update(namespaces=[{"type": "pid"}]), ["mount namespace"]),
]


@pytest.mark.parametrize("edit,words", [c[1:] for c in MISSING], ids=[c[0] for c in MISSING])
def test_missing_field(bundle, fails_cleanly, edit, words):
    edit(bundle.config)
    bundle.save()
    fails_cleanly(*words)


@pytest.mark.parametrize("kind", ["bogus", "", "PID", "pid ", "cgroup2", "network\n"])
def test_unknown_namespace_type(bundle, fails_cleanly, kind):
    bundle.add_namespace(kind)
    bundle.save()
    fails_cleanly("linux.namespaces")


# ---- size ---------------------------------------------------------------------------------------------------------

HUGE = [
    ("arg-10MiB", lambda b: b.args("echo", "x" * (10 * MiB)), ["process.args"]),
    ("env-1MiB", lambda b: b.env("BIG=" + "x" * MiB), ["process.env"]),
    ("hostname-1MiB", lambda b: b.config.update(hostname="h" * MiB), ["hostname"]),
    ("cwd-1MiB", lambda b: b.process.update(cwd="/" + "d" * MiB), ["process.cwd"]),
    ("mount-destination-1MiB", lambda b: b.mount("/" + "m" * MiB, "tmpfs", "tmpfs"), ["mounts"]),
    ("sysctl-key-1MiB", lambda b: b.config["linux"].update(sysctl={"net." + "k" * MiB: "1"}), ["linux.sysctl"]),
    ("annotation-10MiB", lambda b: b.config.update(annotations={"a": "v" * (10 * MiB)}), None),
]


@pytest.mark.parametrize("edit,words", [c[1:] for c in HUGE], ids=[c[0] for c in HUGE])
def test_huge_string(run, bundle, cid, fails_cleanly, edit, words):
    edit(bundle)
    bundle.save()
    if words is None:
        # An annotation pea does not read: a big value is no reason to refuse the container.
        run.ok("create", "--bundle", bundle.path, cid)
        run.ok("delete", "--force", cid)
        return
    fails_cleanly(*words)


DEPTH = 100_000
NESTED = "[" * DEPTH + "]" * DEPTH

DEEP = [
    ("annotation-value", setter("annotations", "deep")),
    ("unknown-top-level-key", setter("x-unknown")),
    ("process.args", setter("process", "args")),
    ("linux.resources", setter("linux", "resources")),
]


@pytest.mark.parametrize("where", [c[1] for c in DEEP], ids=[c[0] for c in DEEP])
def test_deep_nesting(bundle, fails_cleanly, where):
    with_placeholder(bundle, where, NESTED)
    fails_cleanly("config.json")


# ---- the config file itself ---------------------------------------------------------------------------------------

def _fifo(path):
    os.mkfifo(path)


def _symlink_to(target):
    return lambda path: os.symlink(target, path)


def _directory(path):
    os.mkdir(path)


def _empty(path):
    open(path, "w").close()


def _twenty_mib(path):
    with open(path, "w") as f:
        f.write('{"ociVersion": "1.0.2", "annotations": {"pad": "' + "p" * (20 * MiB) + '"}}')


CONFIG_FILES = [
    ("fifo", _fifo, ["config.json"]),
    ("symlink-to-dev-zero", _symlink_to("/dev/zero"), ["config.json"]),
    ("symlink-loop", _symlink_to("config.json"), ["config.json"]),
    ("directory", _directory, ["config.json", "not a regular file"]),
    ("empty", _empty, ["config.json"]),
    ("20MiB", _twenty_mib, ["config.json", "larger than"]),
]


@pytest.mark.parametrize("make,words", [c[1:] for c in CONFIG_FILES], ids=[c[0] for c in CONFIG_FILES])
def test_hostile_config_file(bundle, fails_cleanly, make, words):
    make(os.path.join(bundle.path, "config.json"))
    fails_cleanly(*words, timeout=5)


def test_config_symlink_to_a_regular_file_is_refused(bundle, fails_cleanly):
    """pea reads config.json only as a regular file in the bundle: a symlink could lead it to any file on the host
    (and a runtime that follows it would report that file's contents in its JSON errors)."""
    bundle.save()
    os.rename(os.path.join(bundle.path, "config.json"), os.path.join(bundle.path, "real.json"))
    os.symlink("real.json", os.path.join(bundle.path, "config.json"))
    fails_cleanly("config.json", "symlink")


# ---- the rootfs ---------------------------------------------------------------------------------------------------

def test_rootfs_symlink_to_a_directory_is_resolved(run, bundle, cid, tmp_path):
    """A rootfs that is a symlink is resolved once, on the host, when the container is created (as runc does):
    the container runs in the directory it named then."""
    os.rename(bundle.rootfs, str(tmp_path / "real-rootfs"))
    os.symlink(str(tmp_path / "real-rootfs"), bundle.rootfs)
    with open(str(tmp_path / "real-rootfs" / "marker"), "w") as f:
        f.write("real\n")
    bundle.args("cat", "/marker")
    r = run("run", "--bundle", bundle, cid)
    assert r.code == 0, r.err
    assert r.out == "real\n"


@pytest.mark.parametrize("target", ["loop", "/nonexistent/rootfs", "/dev/null"], ids=["loop", "dangling", "chardev"])
def test_rootfs_symlink_that_leads_nowhere(bundle, fails_cleanly, target):
    os.rename(bundle.rootfs, bundle.rootfs + ".real")
    os.symlink(bundle.rootfs if target == "loop" else target, bundle.rootfs)
    bundle.save()
    fails_cleanly("root.path")


# ---- ids ----------------------------------------------------------------------------------------------------------

BAD_IDS = [
    ("slash", "a/b"), ("dotdot", ".."), ("dot", "."), ("dotdot-slash", "../x"), ("newline", "a\nb"),
    ("trailing-newline", "abc\n"), ("tab", "a\tb"), ("space", "a b"), ("non-ascii", "caf\u00e9"),
    ("too-long", "x" * 1025), ("leading-dash", "-x"),
]


@pytest.mark.parametrize("bad_id", [c[1] for c in BAD_IDS], ids=[c[0] for c in BAD_IDS])
def test_bad_id(bundle, fails_cleanly, work_dir, bad_id):
    bundle.save()
    fails_cleanly(container_id=bad_id)
    assert not os.path.exists(os.path.join(work_dir, "x")), "an id with .. escaped --root"


@pytest.mark.parametrize("length", [255, 256, 1024])
def test_long_id(run, bundle, fails_cleanly, length):
    """Ids up to a file name's length work; longer ones are refused before anything is made."""
    long_id = "i" * length
    bundle.save()
    if length <= 255:
        run.ok("create", "--bundle", bundle.path, long_id)
        run.ok("delete", "--force", long_id)
        return
    fails_cleanly("container id", container_id=long_id)


def test_duplicate_creates_race(run, bundle, cid, assert_no_leaks):
    """Eight creates of one id at once: exactly one wins, the others fail with one line and touch nothing."""
    bundle.args("peatest", "sleep", "100")
    bundle.save()
    results = [None] * 8

    def create(i):
        results[i] = run("create", "--bundle", bundle.path, cid)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.code == 0]
    assert len(winners) == 1, [r.err for r in results]
    for r in results:
        if r.code != 0:
            assert_clean_failure(r, cid)
    assert run.state(cid)["status"] == "created"
    run.ok("delete", "--force", cid)
    assert_no_leaks()


# ---- kill ---------------------------------------------------------------------------------------------------------

# "0" is runc's liveness check (test_parity_cli.py), not a bad signal.
BAD_SIGNALS = ["BOGUS", "SIGBOGUS", "SIG", "SIG0", "-9", "65", "99999", "9x", "0x9", "KILL\n", "RTMIN+99", "RTMAX-99",
               "", " 9", "1" * 100]


def test_bad_signal_names(run, bundle, cid):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    for sig in BAD_SIGNALS:
        r = run("kill", cid, sig)
        assert_clean_failure(r, "signal")
        assert run.state(cid)["status"] == "running", f"kill {sig!r} did something"
    run.ok("kill", cid, "KILL")
    run.wait_for_status(cid, "stopped")
    run.ok("delete", cid)
