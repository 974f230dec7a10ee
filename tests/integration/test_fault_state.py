"""A container whose state.json is unreadable is never orphaned (issue 19, item 1): `delete --force` finds and kills
what belongs to the id without trusting state.json (the second record, cleanup.json, or the cgroup derived from the
id) and only then removes the state; `list` shows it as unknown; `state`, `ps` and `kill` name the file and the
problem. When pea cannot tell that nothing of it runs, delete fails and keeps the state."""
import json
import os
import random

import pytest

from helpers import wait_until
from test_cgroup import container_cgroup

pytestmark = pytest.mark.pea_only

SLEEPER = ("peatest", "sleep", "100")


def is_gone(pid):
    """Dead: no such process, or a zombie (we are the subreaper: the reaper thread collects it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wrong_types(text):
    state = json.loads(text)
    state.update(id=7, pid=str(state["pid"]), cgroup_path=["x"])
    return json.dumps(state).encode()


CORRUPTIONS = {
    "empty": lambda text: b"",
    "truncated": lambda text: text[:len(text) // 2],
    "random": lambda text: random.Random(19).randbytes(len(text)),
    "wrong-types": wrong_types,
    "null": lambda text: b"null",
}


def corrupt(path, kind):
    """Replace the file at PATH (made when missing) with a corrupt version; returns what it held."""
    text = b""
    if os.path.exists(path):
        with open(path, "rb") as f:
            text = f.read()
    with open(path, "wb") as f:
        f.write(CORRUPTIONS[kind](text))
    return text


def running(run, bundle, cid):
    bundle.args(*SLEEPER)
    run.ok("run", "--detach", "--bundle", bundle, cid)
    pid = run.state(cid)["pid"]
    return pid, container_cgroup(pid), os.path.join(run.root, cid)


def assert_removed(run, cid, pid, cgroup):
    wait_until(lambda: is_gone(pid), 5, f"the init {pid} to die")
    assert not os.path.exists(cgroup), f"cgroup {cgroup} left behind"
    assert not os.path.exists(os.path.join(run.root, cid)), "state left behind"
    assert "does not exist" in run("state", cid).err


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_delete_force_kills_a_container_whose_state_is_unreadable(run, bundle, cid, kind):
    pid, cgroup, state_dir = running(run, bundle, cid)
    state_file = os.path.join(state_dir, "state.json")
    corrupt(state_file, kind)

    listed = run("list", "--format", "json")
    assert listed.code == 0, listed.err
    entries = {e["id"]: e for e in json.loads(listed.out)}
    assert entries[cid]["status"] == "unknown"
    assert entries[cid]["pid"] == 0
    assert entries[cid]["created"].endswith("Z")
    lines = listed.err.strip().splitlines()
    assert len(lines) == 1 and state_file in lines[0], listed.err
    assert cid in run.ok("list").out
    assert run.ok("list", "--quiet").out.split() == [cid]

    for command in (("state", cid), ("ps", cid), ("kill", cid, "KILL"), ("delete", cid)):
        r = run(*command)
        assert r.code != 0, f"{command[0]} of an unreadable state succeeded"
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and state_file + ": " in lines[0], f"{command[0]}: {r.err}"
        assert r.out == ""
    assert not is_gone(pid), "a failed command killed the container"

    r = run("delete", "--force", cid)
    assert r.code == 0, r.err
    assert_removed(run, cid, pid, cgroup)


def test_both_records_unreadable_the_cgroup_derived_from_the_saved_config_is_killed(run, bundle, cid):
    bundle.config["linux"]["cgroupsPath"] = f"/pea-it-{cid}/c"
    pid, cgroup, state_dir = running(run, bundle, cid)
    assert cgroup.endswith(f"/pea-it-{cid}/c")
    corrupt(os.path.join(state_dir, "state.json"), "truncated")
    corrupt(os.path.join(state_dir, "cleanup.json"), "random")
    r = run("delete", "--force", cid)
    assert r.code == 0, r.err
    assert_removed(run, cid, pid, cgroup)
    # Which parents pea made for it only the records knew: the parent stays, and is the test's to remove.
    os.rmdir(os.path.dirname(cgroup))


def test_every_record_unreadable_the_cgroup_pea_gives_the_id_is_killed(run, bundle, cid):
    pid, cgroup, state_dir = running(run, bundle, cid)
    assert cgroup.endswith(f"/pea/{cid}")
    for name in ("state.json", "cleanup.json", "config.json"):
        corrupt(os.path.join(state_dir, name), "null")
    r = run("delete", "--force", cid)
    assert r.code == 0, r.err
    assert_removed(run, cid, pid, cgroup)


def test_when_pea_cannot_tell_what_runs_delete_fails_and_keeps_the_state(run, bundle, cid):
    bundle.config["linux"]["cgroupsPath"] = f"/pea-it-{cid}/c"
    pid, cgroup, state_dir = running(run, bundle, cid)
    saved = {name: corrupt(os.path.join(state_dir, name), "empty")
             for name in ("state.json", "cleanup.json", "config.json")}
    r = run("delete", "--force", cid)
    assert r.code != 0
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "cannot tell whether anything of it still runs" in lines[0], r.err
    assert "state is kept" in lines[0]
    assert os.path.isdir(state_dir)
    assert not is_gone(pid)
    for name, text in saved.items():
        with open(os.path.join(state_dir, name), "wb") as f:
            f.write(text)
    run.ok("delete", "--force", cid)
    assert_removed(run, cid, pid, cgroup)
    assert not os.path.exists(os.path.dirname(cgroup))


def test_state_written_by_nothing_but_a_killed_create_is_removed(run, cid):
    """create killed right after making the directory: nothing else exists, nothing runs."""
    os.mkdir(os.path.join(run.root, cid), 0o700)
    listed = run("list", "--format", "json")
    assert [e["status"] for e in json.loads(listed.out)] == ["unknown"]
    assert f"{cid}/state.json" in listed.err
    run.ok("delete", "--force", cid)
    assert not os.path.exists(os.path.join(run.root, cid))
