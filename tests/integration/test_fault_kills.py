"""The cleanup command removes all that a killed command made (issue 19, item 2 and "the class"): `create` and `run`
are SIGKILLed at random moments, and after each `delete --force ID` no process, mount, cgroup or state of the id is
left. Everything a command makes on the host is recorded before it is made, or derivable from the id."""
import os
import random
import signal
import time

import pytest

import helpers

pytestmark = pytest.mark.pea_only

KILLS = 50
SLEEPER = ("peatest", "sleep", "100")


def delays(rng):
    """Most kills land in the first 40 ms, where create makes its directory, records and cgroup and clones the
    init; some later, once the init runs (or create is done and the kill finds `run` waiting)."""
    early = [rng.uniform(0, 0.040) for _ in range(KILLS - KILLS // 5)]
    late = [rng.uniform(0.040, 0.150) for _ in range(KILLS // 5)]
    return early + late


def leaks(run, cid, test_mark, paths, mounts_before):
    found = [f"process {pid} ({why})" for pid, why in helpers.marked_processes(test_mark, paths, wait=2.0)]
    found += [f"cgroup {path}" for path in helpers.marked_cgroups(cid)]
    found += [f"mount {point}" for point in sorted(helpers.mount_points() - mounts_before)
              if point.startswith(tuple(paths))]
    found += [f"state {name}" for name in helpers.state_dirs(run.root)]
    return found


@pytest.mark.parametrize("command", ["create", "run"])
def test_delete_force_removes_everything_a_killed_command_made(run, bundle, cid, test_mark, work_dir, tmp_path,
                                                               command):
    bundle.args(*SLEEPER)
    bundle.save()
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    paths = (str(tmp_path), work_dir)
    mounts_before = helpers.mount_points()
    started = time.monotonic()
    for i, delay in enumerate(delays(rng)):
        one = f"{cid}-{i}"
        proc = run.popen(command, "--bundle", bundle.path, one)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        r = run("delete", "--force", one)
        assert r.code == 0, f"seed {seed}, kill {i} after {delay * 1000:.1f} ms: delete --force: {r.err}"
        left = leaks(run, one, test_mark, paths, mounts_before)
        if left:
            helpers.remove_cgroups(helpers.marked_cgroups(one))
        assert not left, f"seed {seed}, {command} killed after {delay * 1000:.1f} ms (kill {i}) left: {left}"
    assert time.monotonic() - started < 30, "the kill loop got slow"
