"""`--preserve-fds N` with fewer than N fds open: the container gets the caller's fds and never one of pea's.

Where the caller leaves a number in 3 ... 3+N-1 free, pea's own descriptors (the state lock, sync sockets, pidfds)
land there; an init that kept them while it waits for `start` held the state lock, and `start`, `run` and
`delete --force` hung on it.
"""
import os

import pytest

from helpers import read, wait_until

pytestmark = pytest.mark.pea_only

TIMEOUT = 10


@pytest.fixture
def caller_fds(tmp_path):
    """Two files for fds 3 and 4, as Runner's fds= wants them."""
    with open(tmp_path / "three", "w") as three, open(tmp_path / "four", "w") as four:
        yield {3: three.fileno(), 4: four.fileno()}


def fd_targets(pid):
    """{fd: target} of PID's open fds."""
    targets = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            pass
    return targets


def test_run_with_missing_preserved_fds(run, bundle, cid, caller_fds):
    bundle.args("peatest", "fds")
    r = run("run", "--preserve-fds", "5", "--bundle", bundle, cid, fds=caller_fds, timeout=TIMEOUT)
    assert r.code == 0, r.err
    assert r.out == "fds 0 1 2 3 4\n"


@pytest.mark.parametrize("with_caller_fds", [True, False], ids=["3-and-4-open", "none-open"])
def test_created_init_holds_nothing_of_peas(run, bundle, cid, work_dir, caller_fds, with_caller_fds,
                                            wait_for_status):
    """Until `start`, the init holds the caller's fds and its exec fifo, nothing else of pea's; start and delete
    --force then finish."""
    bundle.args("peatest", "fds")
    out = os.path.join(work_dir, "out")
    fds = caller_fds if with_caller_fds else None
    run.ok("create", "--preserve-fds", "5", "--bundle", bundle, cid, stdout=out, fds=fds, timeout=TIMEOUT)
    pid = run.state(cid)["pid"]
    fifo = os.path.join(run.root, cid, "exec.fifo")
    expected = {fd: os.readlink(f"/proc/self/fd/{source}") for fd, source in caller_fds.items()} \
        if with_caller_fds else {}

    def held():
        return {fd: target for fd, target in fd_targets(pid).items() if fd > 2 and target != fifo}
    # The init closes its end of the sync socket just after it confirms its release, which create waits for.
    try:
        wait_until(lambda: held() == expected, timeout=2, what="the init to close pea's fds")
    except AssertionError:
        raise AssertionError(f"the created init holds {held()}, not only {expected} and its exec fifo") from None
    run.ok("start", cid, timeout=TIMEOUT)
    wait_for_status(cid, "stopped")
    assert read(out) == ("fds 0 1 2 3 4\n" if with_caller_fds else "fds 0 1 2\n")
    run.ok("delete", "--force", cid, timeout=TIMEOUT)


def test_delete_force_of_a_created_container_with_missing_preserved_fds(run, bundle, cid):
    bundle.args("peatest", "fds")
    run.ok("create", "--preserve-fds", "5", "--bundle", bundle, cid, timeout=TIMEOUT)
    run.ok("delete", "--force", cid, timeout=TIMEOUT)


@pytest.mark.parametrize("with_caller_fds", [True, False], ids=["3-and-4-open", "none-open"])
def test_exec_with_missing_preserved_fds(run, bundle, cid, caller_fds, with_caller_fds, wait_for_status):
    bundle.args("peatest", "sleep", "100")
    run.ok("run", "--detach", "--bundle", bundle, cid, timeout=TIMEOUT)
    fds = caller_fds if with_caller_fds else None
    r = run("exec", "--preserve-fds", "5", cid, "peatest", "fds", fds=fds, timeout=TIMEOUT)
    assert r.code == 0, r.err
    assert r.out == ("fds 0 1 2 3 4\n" if with_caller_fds else "fds 0 1 2\n")
    run.ok("delete", "--force", cid, timeout=TIMEOUT)
