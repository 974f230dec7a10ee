"""Fixtures for pea's integration tests.

The runtime under test is $PEA_RUNTIME (default: $PEA_BUILD_DIR/runtime/pea, the build dir defaulting to
<repo>/build), so that `PEA_RUNTIME=/usr/sbin/runc` runs the same tests against runc.  Tests that pin down behaviour
where pea deliberately differs from runc carry @pytest.mark.pea_only.

Every test gets a private --root, a fresh bundle and a unique container id; teardown force-deletes what the test left
and fails the test if the runtime leaked a process or a state directory.  At the end of the session, any mount,
process or cgroup that still carries the session's marks fails the run.
"""
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

import helpers

BUILD_DIR = os.environ.get("PEA_BUILD_DIR") or os.path.join(helpers.REPO, "build")
RUNTIME = os.environ.get("PEA_RUNTIME") or os.path.join(BUILD_DIR, "runtime", "pea")
PEATEST = os.environ.get("PEA_PEATEST") or os.path.join(BUILD_DIR, "tests", "peatest")

# One mark per session, carried in the env of every container process and in every container id, so that leaks can
# be found without confusing them with other work on the machine.
SESSION_MARK = uuid.uuid4().hex[:8]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="integration tests create containers and need root")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def runtime():
    """Absolute path of the runtime binary under test."""
    path = os.path.abspath(RUNTIME)
    if not os.access(path, os.X_OK):
        pytest.fail(f"runtime {path} is not built (build it, or set PEA_RUNTIME)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def runtime_is_pea(runtime):
    return helpers.is_pea(runtime)


@pytest.fixture(autouse=True)
def _skip_pea_only(request):
    if request.node.get_closest_marker("pea_only") and not helpers.is_pea(os.path.abspath(RUNTIME)):
        pytest.skip("pins pea's own behaviour (not runc's)")


@pytest.fixture
def test_netns():
    """A network namespace of the test's own: network tests never touch the machine's."""
    name = f"pea-it-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    """A short per-session directory under /tmp (unix socket paths must stay under 108 bytes)."""
    path = tempfile.mkdtemp(prefix=f"pea-it-{SESSION_MARK}-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _seccomp_cache(session_dir):
    """pea's cache of compiled seccomp programs, for every pea this session starts (pods, shims and examples too):
    in the session's directory rather than the host's /run/pea-seccomp-cache. A Runner gives each test its own."""
    os.environ[helpers.SECCOMP_CACHE_ENV] = os.path.join(session_dir, "seccomp-cache")


@pytest.fixture(scope="session")
def binaries(tmp_path_factory):
    """peatest and busybox copied once into the session's temp dir, so each rootfs can hard-link them."""
    if not os.access(PEATEST, os.X_OK):
        pytest.fail(f"{PEATEST} is not built (ninja -C {BUILD_DIR})", pytrace=False)
    d = tmp_path_factory.mktemp("binaries")
    peatest = str(d / "peatest")
    busybox = str(d / "busybox")
    shutil.copy2(PEATEST, peatest)
    shutil.copy2("/bin/busybox", busybox)
    return {"peatest": peatest, "busybox": busybox}


@pytest.fixture(scope="session", autouse=True)
def _session_leak_check(tmp_path_factory, session_dir):
    """Fail the run loudly if any container process, mount or cgroup of this session outlives it."""
    if os.geteuid() != 0:
        yield
        return
    helpers.become_subreaper()
    helpers.start_reaper()
    helpers.occupy_low_fds()
    base = str(tmp_path_factory.getbasetemp())
    mounts_before = helpers.mount_points()
    yield
    helpers.reap_orphans()
    problems = []
    for point in sorted(helpers.mount_points() - mounts_before):
        if point.startswith((base, session_dir)):
            problems.append(f"mount left behind: {point}")
    for pid, why in helpers.marked_processes(SESSION_MARK, (base, session_dir), wait=2.0):
        problems.append(f"process left behind: pid {pid} ({why})")
    cgroups = helpers.marked_cgroups(SESSION_MARK)
    for path in cgroups:
        problems.append(f"cgroup left behind: {path}")
    helpers.remove_cgroups(cgroups)
    if problems:
        pytest.fail("the runtime leaked:\n  " + "\n  ".join(problems), pytrace=False)


_counter = iter(range(1, 1 << 30))


@pytest.fixture
def cid(request):
    """A container id unique to this test and session: it-<mark>-<n>."""
    return f"it-{SESSION_MARK}-{next(_counter)}"


@pytest.fixture
def test_mark(cid):
    """The value of PEA_IT_MARK in this test's containers: finds their processes if they leak."""
    return f"{SESSION_MARK}:{cid}"


@pytest.fixture
def work_dir(session_dir, cid):
    """A short private directory for this test (sockets, pid files, logs)."""
    path = os.path.join(session_dir, cid.rsplit("-", 1)[1])
    os.mkdir(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def state_root(work_dir, runtime, cid, test_mark, tmp_path):
    """The --root of this test: at teardown, force-delete whatever is still listed, then check nothing leaked."""
    root = os.path.join(work_dir, "root")
    os.mkdir(root, 0o700)
    yield root
    problems = []
    runner = helpers.Runner(runtime, root, work_dir, test_mark)
    listed = runner("list", "--quiet")
    if listed.code != 0 and os.listdir(root):
        problems.append(f"list failed at teardown: {listed.err.strip()}")
    for left in listed.out.split():
        r = runner("delete", "--force", left)
        if r.code != 0:
            problems.append(f"delete --force {left} failed: {r.err.strip()}")
    for pid, why in helpers.marked_processes(test_mark, (str(tmp_path), work_dir), wait=2.0):
        problems.append(f"process left behind: pid {pid} ({why})")
        helpers.kill_and_reap(pid)
    cgroups = helpers.marked_cgroups(cid)
    for path in cgroups:
        problems.append(f"cgroup left behind: {path}")
    helpers.remove_cgroups(cgroups)
    mounts = sorted(p for p in helpers.mount_points() if p.startswith((str(tmp_path), work_dir)))
    for point in mounts:
        problems.append(f"mount left behind on the host: {point}")
    helpers.detach_mounts(mounts)
    leftovers = helpers.state_dirs(root)
    if leftovers:
        problems.append(f"state left behind in {root}: {leftovers}")
    shutil.rmtree(root, ignore_errors=True)
    if problems:
        pytest.fail("teardown found leaks:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def run(runtime, state_root, work_dir, test_mark):
    """run(*args, **kw) -> Result(code, out, err): the runtime with this test's --root (see helpers.Runner)."""
    return helpers.Runner(runtime, state_root, work_dir, test_mark)


@pytest.fixture
def wait_for_status(run):
    """wait_for_status(id, status, timeout=5) -> the state dict once `state` reports STATUS."""
    return run.wait_for_status


@pytest.fixture
def bundle(tmp_path, binaries, test_mark):
    """A fresh bundle (rootfs + config) in tmp_path; edit bundle.config, the runner writes it before each command."""
    return helpers.Bundle(str(tmp_path / "bundle"), binaries, test_mark)


@pytest.fixture
def assert_no_leaks(run, bundle, cid, test_mark, work_dir):
    """assert_no_leaks(): after a failed create, no state dir, new host mount or container process exists.

    The mount snapshot is taken when the test starts.
    """
    before = helpers.snapshot()

    def check():
        r = run("state", cid)
        assert r.code != 0 and "does not exist" in r.err, f"state of a failed create: {r.out}{r.err}"
        dirs = helpers.state_dirs(run.root)
        assert dirs == [], f"state dirs left behind: {dirs}"
        assert helpers.new_mounts_since(before) == [], "mounts left behind"
        procs = helpers.marked_processes(test_mark, (bundle.path, work_dir), wait=2.0)
        assert procs == [], f"processes left behind: {procs}"
    return check


@pytest.fixture(scope="session")
def pod_rootfs(session_dir):
    """A busybox rootfs with every applet, shared read-only by the pod tests (their writes go to volumes/overlays)."""
    import pods
    return pods.build_rootfs(os.path.join(session_dir, "pod-rootfs"))


@pytest.fixture
def pods(runtime, work_dir, pod_rootfs, test_mark):
    """Pods of this test under a private --root and --data-root; at teardown nothing of them may be left."""
    import pods as pods_module
    yield from pods_module.checked_pods(runtime, work_dir, pod_rootfs, test_mark)
