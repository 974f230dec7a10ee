"""Rootless: an unprivileged user runs a container from `pea spec --rootless`: its uid mapped to root inside, and
its subordinate ranges (/etc/subuid, /etc/subgid) mapped from 1 on through newuidmap/newgidmap when it has some."""
import ctypes
import fcntl
import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import RUNTIME, SESSION_MARK
from helpers import state_dirs

pytestmark = pytest.mark.pea_only

# Per session: test sessions of several checkouts may run at once on one machine.
USER = f"pea-it-rl-{SESSION_MARK}"
# Held while a session has its lines in /etc/subuid and /etc/subgid, so that restoring the files cannot drop the
# lines of another session.
SUBID_LOCK = "/run/pea-it-subid.lock"
SUBUID_START, SUBGID_START, SUB_COUNT = 2000000000, 2100000000, 65536
APPLETS = ("sh", "id", "cat", "touch", "chown", "stat")


@pytest.fixture
def unprivileged_user():
    created = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        # A system user: useradd gives it no subordinate ranges of its own, the tests decide.
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", USER], check=True)
        created = True
    try:
        yield pwd.getpwnam(USER)
    finally:
        if created:
            subprocess.run(["userdel", USER], check=False)


@pytest.fixture
def subordinate_ranges(unprivileged_user):
    """One range in /etc/subuid and one in /etc/subgid for the test user; both files restored byte for byte."""
    lock = os.open(SUBID_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    saved = {}
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for path, start in (("/etc/subuid", SUBUID_START), ("/etc/subgid", SUBGID_START)):
            try:
                with open(path, "rb") as f:
                    saved[path] = f.read()
            except FileNotFoundError:
                saved[path] = None
            text = saved[path] or b""
            if text and not text.endswith(b"\n"):
                text += b"\n"
            with open(path, "wb") as f:
                f.write(text + f"{USER}:{start}:{SUB_COUNT}\n".encode())
        yield unprivileged_user
    finally:
        for path, text in saved.items():
            if text is None:
                os.unlink(path)
            else:
                with open(path, "wb") as f:
                    f.write(text)
        os.close(lock)


@pytest.fixture
def user_bundle(unprivileged_user, binaries):
    """A bundle, a copy of pea and an $XDG_RUNTIME_DIR, all owned by the test user."""
    work = tempfile.mkdtemp(prefix="pea-rootless-")
    try:
        os.chmod(work, 0o755)
        shutil.copy2(RUNTIME, os.path.join(work, "pea"))
        rootfs = os.path.join(work, "bundle", "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        os.makedirs(os.path.join(rootfs, "tmp"))
        shutil.copy2(binaries["busybox"], os.path.join(rootfs, "bin", "busybox"))
        for applet in APPLETS:
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        os.makedirs(os.path.join(work, "xdg"))
        for base, dirs, files in os.walk(work):
            for name in dirs + files:
                os.lchown(os.path.join(base, name), unprivileged_user.pw_uid, unprivileged_user.pw_gid)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def as_user(user, command, env=None, before_drop=None):
    def drop():
        if before_drop:
            before_drop()
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    return subprocess.run(command, preexec_fn=drop, capture_output=True, text=True, timeout=30,
                          env=env or {"PATH": "/usr/bin:/bin"})


def user_spec(user, work, args, edit=None):
    """`pea spec --rootless` as the user, then process.args (and EDIT(config)) filled in; returns the config."""
    bundle = os.path.join(work, "bundle")
    r = as_user(user, [os.path.join(work, "pea"), "spec", "--rootless", "--bundle", bundle])
    assert r.returncode == 0, r.stderr
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    written = json.loads(json.dumps(config))
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", args]
    if edit:
        edit(config)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return written


def user_run(user, work, cid, before_drop=None):
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": os.path.join(work, "xdg")}
    return as_user(user, [os.path.join(work, "pea"), "run", "--bundle", os.path.join(work, "bundle"), cid],
                   env=env, before_drop=before_drop)


def assert_nothing_left(user, work):
    state = os.path.join(work, "xdg", "pea")
    assert not os.path.isdir(state) or state_dirs(state) == [], "no state left"
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            st = os.stat(f"/proc/{pid}")
        except FileNotFoundError:
            continue
        if st.st_uid == user.pw_uid:
            left.append(pid)
    assert left == [], f"processes of {USER} left: {left}"


def test_unprivileged_user_runs_a_container(unprivileged_user, user_bundle):
    config = user_spec(unprivileged_user, user_bundle, "id -u; cat /proc/self/uid_map")
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": unprivileged_user.pw_uid, "size": 1}]
    assert config["linux"]["gidMappings"] == [{"containerID": 0, "hostID": unprivileged_user.pw_gid, "size": 1}]
    r = user_run(unprivileged_user, user_bundle, "rl1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "0", "root inside"
    assert lines[1:] == ["0", str(unprivileged_user.pw_uid), "1"]
    runtime_dir = os.path.join(user_bundle, "xdg")
    assert os.path.isdir(os.path.join(runtime_dir, "pea")), "state lives under $XDG_RUNTIME_DIR/pea"
    assert state_dirs(os.path.join(runtime_dir, "pea")) == []
    # The profile `pea spec --rootless` writes was compiled once and kept where only this user can write, beside
    # (not in) the state root.
    store = os.stat(os.path.join(runtime_dir, "pea-seccomp-cache"))
    assert (store.st_uid, store.st_mode & 0o777) == (unprivileged_user.pw_uid, 0o700)


def test_subordinate_ranges_are_mapped_from_1(subordinate_ranges, user_bundle):
    user = subordinate_ranges
    script = ("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
              "touch /tmp/f /owned && chown 1000:1000 /tmp/f /owned && stat -c %u:%g /tmp/f /owned")

    def edit(config):
        config["root"]["readonly"] = False
        for kind in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][kind].append("CAP_CHOWN")
        config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["nosuid", "nodev", "mode=1777"]})
    config = user_spec(user, user_bundle, script, edit)
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": user.pw_uid, "size": 1},
                                              {"containerID": 1, "hostID": SUBUID_START, "size": SUB_COUNT}]
    assert config["linux"]["gidMappings"] == [{"containerID": 0, "hostID": user.pw_gid, "size": 1},
                                              {"containerID": 1, "hostID": SUBGID_START, "size": SUB_COUNT}]
    r = user_run(user, user_bundle, "rl2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["0", "0"], "root inside"
    assert [line.split() for line in lines[2:6]] == [
        ["0", str(user.pw_uid), "1"], ["1", str(SUBUID_START), str(SUB_COUNT)],
        ["0", str(user.pw_gid), "1"], ["1", str(SUBGID_START), str(SUB_COUNT)]]
    assert lines[6:] == ["1000:1000", "1000:1000"], "chown to a subordinate id inside"
    st = os.stat(os.path.join(user_bundle, "bundle", "rootfs", "owned"))
    assert (st.st_uid, st.st_gid) == (SUBUID_START + 999, SUBGID_START + 999), "the host sees the subordinate ids"
    assert_nothing_left(user, user_bundle)


def test_a_range_the_user_does_not_own_fails_with_newuidmaps_words(subordinate_ranges, user_bundle):
    user = subordinate_ranges

    def edit(config):
        config["linux"]["uidMappings"][1]["hostID"] = SUBUID_START + SUB_COUNT
    user_spec(user, user_bundle, "true", edit)
    r = user_run(user, user_bundle, "rl3")
    assert r.returncode != 0
    first = r.stderr.strip().splitlines()[0]
    assert "write uid_map of " in first and " with newuidmap: newuidmap: " in first, r.stderr
    assert f"{SUBUID_START + SUB_COUNT}" in first, "newuidmap names the range it refused"
    assert_nothing_left(user, user_bundle)


def hide_usr_bin():
    """In the child, before it drops root: a private mount namespace with an empty /usr/bin (and so /bin)."""
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 0x4000, 1 << 18
    if (libc.unshare(CLONE_NEWNS) != 0 or libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0 or
            libc.mount(b"tmpfs", b"/usr/bin", b"tmpfs", 0, None) != 0):
        raise OSError(ctypes.get_errno(), "hide /usr/bin")


def test_extra_mappings_without_newuidmap_fail_and_say_so(subordinate_ranges, user_bundle):
    user = subordinate_ranges
    user_spec(user, user_bundle, "true")
    r = user_run(user, user_bundle, "rl4", before_drop=hide_usr_bin)
    assert r.returncode != 0
    assert "with newuidmap: not found in PATH or /usr/bin" in r.stderr, r.stderr
    assert_nothing_left(user, user_bundle)
