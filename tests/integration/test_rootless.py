"""Rootless: an unprivileged user runs a container from `pea spec --rootless` (its uid mapped to root inside)."""
import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import RUNTIME

pytestmark = pytest.mark.pea_only

USER = "pea-it-rootless"


@pytest.fixture
def unprivileged_user():
    created = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", USER], check=True)
        created = True
    try:
        yield pwd.getpwnam(USER)
    finally:
        if created:
            subprocess.run(["userdel", USER], check=False)


def as_user(user, command, env=None):
    def drop():
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    return subprocess.run(command, preexec_fn=drop, capture_output=True, text=True, timeout=30,
                          env=env or {"PATH": "/usr/bin:/bin"})


def test_unprivileged_user_runs_a_container(unprivileged_user, binaries):
    work = tempfile.mkdtemp(prefix="pea-rootless-")
    try:
        os.chmod(work, 0o755)
        pea = os.path.join(work, "pea")
        shutil.copy2(RUNTIME, pea)
        rootfs = os.path.join(work, "bundle", "rootfs", "bin")
        os.makedirs(rootfs)
        shutil.copy2(binaries["busybox"], os.path.join(rootfs, "busybox"))
        for applet in ("sh", "id", "cat"):
            os.symlink("busybox", os.path.join(rootfs, applet))
        runtime_dir = os.path.join(work, "xdg")
        os.makedirs(runtime_dir)
        for base, dirs, files in os.walk(work):
            for name in dirs + files:
                os.lchown(os.path.join(base, name), unprivileged_user.pw_uid, unprivileged_user.pw_gid)
        bundle = os.path.join(work, "bundle")
        r = as_user(unprivileged_user, [pea, "spec", "--rootless", "--bundle", bundle])
        assert r.returncode == 0, r.stderr
        with open(os.path.join(bundle, "config.json")) as f:
            config = json.load(f)
        assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": unprivileged_user.pw_uid, "size": 1}]
        config["process"]["terminal"] = False
        config["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map"]
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": runtime_dir}
        r = as_user(unprivileged_user, [pea, "run", "--bundle", bundle, "rl1"], env=env)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split()
        assert lines[0] == "0", "root inside"
        assert lines[1:] == ["0", str(unprivileged_user.pw_uid), "1"]
        assert os.path.isdir(os.path.join(runtime_dir, "pea")), "state lives under $XDG_RUNTIME_DIR/pea"
        assert os.listdir(os.path.join(runtime_dir, "pea")) == []
    finally:
        shutil.rmtree(work, ignore_errors=True)
