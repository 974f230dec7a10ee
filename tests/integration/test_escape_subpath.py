"""subPath escapes (issue 13 item 1): a pod member that can write a volume must never get a host directory bound into
a sibling through the sibling's subPath, however it swaps the path while the sibling starts. Files named by a subPath
are bound as files."""
import json
import os
import shutil
import socket
import threading
import uuid

import pytest

import helpers
from pods import container

pytestmark = pytest.mark.pea_only

VICTIM_STARTS = 200
REFUSAL = "container victim: subPath sub in volume vol leads out of the volume: refused"


def shim_connect(pods, name):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(os.path.join(pods.root, "pods", name, "shim.sock"))
    return sock


def shim_request(sock, request_id, op, **args):
    sock.send(json.dumps(dict(v=1, id=request_id, op=op, **args)).encode())
    return json.loads(sock.recv(1 << 17))


class EventLog:
    """The shim's event stream, read in the background (a subscriber that does not read is dropped)."""

    def __init__(self, pods, name):
        self.messages = []
        self.sock = shim_connect(pods, name)
        self.sock.send(b'{"v":1,"id":1,"op":"events"}')
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(1 << 17)
            except OSError:
                return
            if not data:
                return
            event = json.loads(data).get("event") or {}
            if "message" in event:
                self.messages.append((event.get("container"), event["message"]))

    def close(self):
        self.sock.close()
        self.thread.join(5)


def containers(pods, name):
    code, out, err = pods.cli("pod", "ps", "--output", "json", name)
    assert code == 0, err
    return {c["name"]: c for c in json.loads(out)}


def volume_dir(pods, name, volume):
    return os.path.join(pods.data, "pods", name, "volumes", volume)


def test_sibling_swapping_the_sub_path_for_a_symlink_to_root_never_binds_the_host(pods, work_dir, binaries):
    """The attacker (a sibling in the same pod, writing the shared emptyDir) exchanges the subPath directory with a
    symlink to "/" in a tight loop, while the victim, which binds that subPath, is started 200 times more through
    the shim's start operation. Each start either binds the directory itself or is refused with one clear line; none
    may show the host's root (a marker file that exists only there)."""
    marker = os.path.join(work_dir, f"host-only-{uuid.uuid4().hex}")
    open(marker, "w").close()
    tools = os.path.join(work_dir, "tools")
    os.mkdir(tools)
    shutil.copy2(binaries["peatest"], os.path.join(tools, "peatest"))
    name = pods.name()
    check = f"if [ -e /x{marker} ] || [ -e /x/etc/os-release ]; then echo escaped; else echo ok; fi >> /out/runs"
    manifest = pods.manifest([
        container("attacker", pods.rootfs, "mkdir -p /vol/sub && exec /tools/peatest swap-root /vol/sub",
                  volumeMounts=[{"name": "vol", "mountPath": "/vol"},
                                {"name": "tools", "mountPath": "/tools", "readOnly": True}]),
        container("victim", pods.rootfs, check,
                  volumeMounts=[{"name": "vol", "mountPath": "/x", "subPath": "sub"},
                                {"name": "out", "mountPath": "/out"}]),
    ], volumes=[{"name": "vol", "emptyDir": {}}, {"name": "out", "emptyDir": {}},
                {"name": "tools", "hostPath": {"path": tools, "type": "Directory"}}], name=name)
    code, _, err = pods.apply(manifest)
    assert code == 0, err
    events = None
    try:
        swap = os.path.join(volume_dir(pods, name, "vol"), "sub.swap")
        helpers.wait_until(lambda: os.path.lexists(swap), 15, "the attacker swapping")
        events = EventLog(pods, name)
        exit_codes = []
        with shim_connect(pods, name) as sock:
            assert shim_request(sock, 1, "wait", container="victim")["ok"], "the victim's first run"
            for i in range(VICTIM_STARTS):
                reply = shim_request(sock, 2 * i + 2, "start", container="victim")
                assert reply["ok"], reply
                reply = shim_request(sock, 2 * i + 3, "wait", container="victim")
                assert reply["ok"], reply
                exit_codes.append(reply["result"]["exitCode"])
        state = containers(pods, name)
        assert state["attacker"]["state"] == "running", "the attacker stopped: the race was not run"
        assert state["victim"]["restarts"] == VICTIM_STARTS
        with open(os.path.join(volume_dir(pods, name, "out"), "runs")) as f:
            runs = f.read().split()
    finally:
        code, _, err = pods.cli("pod", "rm", "--force", name)
        if events:
            events.close()
        assert code == 0, err
    assert "escaped" not in runs, f"{runs.count('escaped')} of {len(runs)} runs saw the host's root"
    assert set(exit_codes) <= {0, 128}, exit_codes
    failures = [message for who, message in events.messages if who == "victim" and "failed to start" in message]
    assert all(message.endswith(REFUSAL) for message in failures), failures
    assert len(failures) == exit_codes.count(128), (failures, exit_codes)
    assert exit_codes.count(0) > 0 and failures, f"the race did not go both ways: {exit_codes}"


def test_sub_path_naming_a_file_is_bound_as_a_file(pods, tmp_path):
    host = tmp_path / "vol"
    host.mkdir()
    (host / "app.conf").write_text("setting=1\n")
    m = pods.manifest([container(
        "a", pods.rootfs,
        "[ -f /etc/app.conf ] && echo is-a-file; cat /etc/app.conf; echo written >> /etc/app.conf; "
        "ls -d /made/here",
        volumeMounts=[{"name": "h", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                      {"name": "h", "mountPath": "/made/here", "subPath": "new/dir"}])],
        volumes=[{"name": "h", "hostPath": {"path": str(host), "type": "Directory"}}])
    code, out, err = pods.run(m)
    assert code == 0, err
    assert out.splitlines() == ["[a] is-a-file", "[a] setting=1", "[a] /made/here"], out
    assert (host / "app.conf").read_text() == "setting=1\nwritten\n"
    assert (host / "new" / "dir").is_dir(), "a missing subPath is made as a directory"


@pytest.mark.parametrize("link, sub_path", [
    ("/", "escape"),
    ("../../../../../../..", "escape"),
    ("/", "escape/etc"),
])
def test_sub_path_through_a_symlink_out_of_the_volume_is_refused(pods, tmp_path, link, sub_path):
    host = tmp_path / "vol"
    host.mkdir()
    os.symlink(link, host / "escape")
    m = pods.manifest([container("a", pods.rootfs, "ls /x",
                                 volumeMounts=[{"name": "h", "mountPath": "/x", "subPath": sub_path}])],
                      volumes=[{"name": "h", "hostPath": {"path": str(host)}}])
    code, out, err = pods.run(m)
    assert code == 128, (code, out, err)
    assert out == "", out
    refusals = [line for line in err.splitlines() if "failed to start" in line]
    assert len(refusals) == 1 and refusals[0].endswith(
        f"container a: subPath {sub_path} in volume h leads out of the volume: refused"), err
    assert sorted(os.listdir(host)) == ["escape"], "nothing was made through the symlink"


def test_sub_path_through_a_symlink_inside_the_volume_is_followed(pods, tmp_path):
    host = tmp_path / "vol"
    (host / "real").mkdir(parents=True)
    (host / "real" / "f").write_text("inside\n")
    os.symlink("../vol/real", host / "alias")
    m = pods.manifest([container("a", pods.rootfs, "cat /x/f",
                                 volumeMounts=[{"name": "h", "mountPath": "/x", "subPath": "alias"}])],
                      volumes=[{"name": "h", "hostPath": {"path": str(host)}}])
    code, out, err = pods.run(m)
    assert code == 128, (code, out, err)
    # "../vol" climbs out of the volume before it comes back in: refused as well, like any step outside.
    assert "leads out of the volume: refused" in err, err
    os.unlink(host / "alias")
    os.symlink("real", host / "alias")
    code, out, err = pods.run(pods.manifest([container(
        "a", pods.rootfs, "cat /x/f", volumeMounts=[{"name": "h", "mountPath": "/x", "subPath": "alias"}])],
        volumes=[{"name": "h", "hostPath": {"path": str(host)}}]))
    assert code == 0, err
    assert out == "[a] inside\n", out
