"""Fixtures for pea's end-to-end tests: podman (+ conmon) and containerd (+ its runc v2 shim, driven by ctr) with the
built pea as their runtime, each with private state under one temp dir, and a busybox image made locally.

Teardown removes everything the orchestrators made (containers, pods, images, mounts, cgroups, daemons by PID) and
fails the test run if something is left.
"""
import os
import shutil
import tempfile
import uuid

import pytest

import e2e

BUILD_DIR = os.environ.get("PEA_BUILD_DIR") or os.path.join(e2e.REPO, "build")
PEA = os.path.abspath(os.environ.get("PEA_RUNTIME") or os.path.join(BUILD_DIR, "runtime", "pea"))
MARK = uuid.uuid4().hex[:8]


def fail_on_problems(problems, what):
    """Fail the test (or session) when a teardown or leak check found anything, listing each on its own line."""
    if problems:
        pytest.fail(f"{what}:\n  " + "\n  ".join(problems), pytrace=False)


def require_containerd():
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (tests/install-deps installs containerd)")


def serve_containerd(c, rootfs_tar, what):
    """The body of a containerd session fixture (`yield from`): start C with the test image imported, hand it out,
    then stop it and fail on what its teardown found ("WHAT teardown found leaks")."""
    try:
        c.start()
        c.import_image(rootfs_tar)
        yield c
    finally:
        problems = c.stop()
    fail_on_problems(problems, f"{what} teardown found leaks")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="end-to-end tests run podman and containerd and need root")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pea():
    if not os.access(PEA, os.X_OK):
        pytest.fail(f"runtime {PEA} is not built (ninja -C {BUILD_DIR})", pytrace=False)
    return PEA


@pytest.fixture(scope="session")
def session_dir():
    """A short per-session directory under /tmp (unix socket paths must stay under 108 bytes)."""
    path = tempfile.mkdtemp(prefix=f"pea-e2e-{MARK}-", dir="/tmp")
    os.chmod(path, 0o755)
    # pea's cache of compiled seccomp programs, for the pea the daemons run: in the session's directory, not in the
    # host's /run/pea-seccomp-cache. Set before any daemon starts, so each passes it down to pea.
    os.environ["PEA_SECCOMP_CACHE_DIR"] = os.path.join(path, "seccomp-cache")
    mounts_before = e2e.mount_points()
    # containerd 1.6 and its shims make these fixed directories whatever their configured state dirs are: the ones
    # this session made go when it ends, if empty (a system containerd's stay).
    fixed_dirs = [d for d in ("/run/containerd/pea", "/run/containerd/runc", "/run/containerd/s",
                              "/run/containerd/fifo", "/run/containerd") if not os.path.exists(d)]
    yield path
    if "/run/containerd/pea" in fixed_dirs:
        # containerd-shim-pea-v2's record of the sealed copy of itself its shims share (a file, not a state dir).
        try:
            os.unlink("/run/containerd/pea/.containerd-shim-pea-v2-copy")
        except OSError:
            pass
    for d in fixed_dirs:
        try:
            os.rmdir(d)
        except OSError:
            pass
    problems = [f"mount left behind: {m}" for m in sorted(e2e.mount_points() - mounts_before) if m.startswith(path)]
    e2e.detach_mounts([m for m in e2e.mount_points() if m.startswith(path)])
    shutil.rmtree(path, ignore_errors=True)
    fail_on_problems(problems, "the end-to-end session leaked")


@pytest.fixture(scope="session")
def rootfs_tar(session_dir):
    """A busybox-static root filesystem as a tarball (the layer of the image both orchestrators use)."""
    return e2e.make_rootfs_tar(os.path.join(session_dir, "busybox-rootfs.tar"))


@pytest.fixture(scope="session")
def podman_session(session_dir, pea, rootfs_tar):
    if not (shutil.which("podman") and shutil.which("conmon")):
        pytest.skip("podman or conmon is not installed (tests/install-deps installs them)")
    p = e2e.Podman(os.path.join(session_dir, "podman"), pea, MARK)
    try:
        p.import_image(rootfs_tar)
        yield p
    finally:
        problems = p.cleanup()
    fail_on_problems(problems, "podman teardown found leaks")


@pytest.fixture
def podman(podman_session):
    """The session's podman; after each test no container or pod of it may be left."""
    yield podman_session
    problems = podman_session.remove_all()
    fail_on_problems(problems, "test left behind")


@pytest.fixture(scope="session")
def containerd_session(session_dir, pea, rootfs_tar):
    require_containerd()
    c = e2e.Containerd(os.path.join(session_dir, "ctrd"), pea, MARK)
    yield from serve_containerd(c, rootfs_tar, "containerd")


@pytest.fixture
def ctr(containerd_session):
    """The session's containerd (ctr runner); after each test no task or container may be left."""
    yield containerd_session
    problems = containerd_session.remove_all()
    fail_on_problems(problems, "test left behind")


@pytest.fixture(scope="session")
def cri_session(session_dir, pea, rootfs_tar):
    """A private containerd with its CRI plugin on pea (tests/e2e/cri), the pea-pause sandbox image and busybox."""
    require_containerd()
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.skip("python3-grpcio or python3-grpc-tools is not installed (tests/install-deps installs them)")
    pause = os.path.join(BUILD_DIR, "sandbox", "pea-pause")
    if not os.access(pause, os.X_OK):
        pytest.fail(f"{pause} is not built (ninja -C {BUILD_DIR})", pytrace=False)
    from cri.harness import CriContainerd
    shim = os.path.join(BUILD_DIR, "shim", "v2", "containerd-shim-pea-v2")
    c = CriContainerd(os.path.join(session_dir, "cri"), pea, MARK, pause,
                      shim_binary=shim if os.access(shim, os.X_OK) else None)
    try:
        c.start(os.path.join(session_dir, "cri-api"))
        c.import_images(rootfs_tar)
        yield c
    finally:
        problems = c.stop()
    fail_on_problems(problems, "CRI containerd teardown found leaks")


@pytest.fixture
def cri(cri_session):
    """The session's CRI containerd; after each test no pod sandbox, container, task or cgroup of it may be left."""
    yield cri_session
    problems = cri_session.remove_all()
    fail_on_problems(problems, "test left behind")


_counter = iter(range(1, 1 << 30))


@pytest.fixture
def name():
    """A container name unique to this session and test."""
    return f"e2e-{MARK}-{next(_counter)}"
