"""The example pods of examples/pods, run as a user would run them (built by examples/pods/prepare, into a temp dir
here), and examples/demo itself. Each manifest is copied with its image prefix pointed at the prepared directory
and a unique pod name; everything else is the file from the repository."""
import os
import re
import subprocess

import pytest

import helpers

pytestmark = pytest.mark.pea_only

EXAMPLES = os.path.join(helpers.REPO, "examples")
PODS = os.path.join(EXAMPLES, "pods")
IMAGE_PREFIX = "/var/lib/pea/examples/"


@pytest.fixture(scope="session")
def prepared(session_dir):
    """What examples/pods/prepare builds, in a directory of this session; it prints nothing when it works."""
    path = os.path.join(session_dir, "examples")
    p = subprocess.run([os.path.join(PODS, "prepare"), path], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == "", "prepare prints nothing but errors"
    return path


def manifest_text(example):
    with open(os.path.join(PODS, f"{example}.yaml")) as f:
        return f.read()


def example_manifest(pods, prepared, example):
    """A copy of examples/pods/EXAMPLE.yaml: images under `prepared`, a pod name unique to the test."""
    text = manifest_text(example)
    assert IMAGE_PREFIX in text, "the examples name their images under the documented prefix"
    text = text.replace(IMAGE_PREFIX, prepared.rstrip("/") + "/")
    text, n = re.subn(r"(?m)^(metadata:\n(?:  .*\n)*?  name: )\S+$", lambda m: m.group(1) + pods.name(), text)
    assert n == 1, "metadata.name found"
    path = os.path.join(pods.work_dir, f"{example}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def netns_wget(netns, url):
    """busybox wget from inside NETNS; '' while nothing answers. (busybox 1.35's wget -T crashes: no -T.)"""
    try:
        p = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "busybox", "wget", "-qO-", url],
                           capture_output=True, text=True, timeout=3)
    except subprocess.TimeoutExpired:
        return ""
    return p.stdout if p.returncode == 0 else ""


def web_version():
    """The app version web.yaml asks for: the name of its app layer."""
    return re.search(r"/webapp-([0-9][^/\s]*)$", manifest_text("web"), re.M).group(1)


def test_web_serves_the_app_version_named_in_the_manifest(pods, prepared, test_netns):
    version = web_version()
    run = pods.start(example_manifest(pods, prepared, "web"), netns=test_netns)
    page = ""
    try:
        run.wait_for_line("[install] installed: index.html")
        for _ in range(50):
            page = netns_wget(test_netns, "http://198.18.0.2:8080/")
            if page or run.proc.poll() is not None:
                break
        assert f"webapp {version}," in page, f"page: {page!r}\nerr:\n{run.err}"
        # The init container had finished before the server started, and the server is still up.
        err = run.err_lines
        assert err.index("pea: pod: install: exited with code 0") < \
            next(i for i, l in enumerate(err) if l.startswith("pea: pod: httpd: started"))
        assert run.proc.poll() is None
    finally:
        code = run.stop()
    assert code == 0, run.err
    links = subprocess.run(["ip", "-n", test_netns, "-o", "link"], capture_output=True, text=True).stdout
    assert [l.split(": ")[1] for l in links.splitlines()] == ["lo"], "bridge and veth removed with the pod"
    assert pods.leftovers() == []


def test_web_app_layer_is_not_in_the_server_image(prepared):
    """The page reaches httpd only through the init container: the server's own image has no /app."""
    assert os.path.isfile(os.path.join(prepared, f"webapp-{web_version()}", "app", "index.html"))
    assert not os.path.exists(os.path.join(prepared, "rootfs", "app"))


def test_logging_sidecar_prints_the_apps_log_lines(pods, prepared):
    run = pods.start(example_manifest(pods, prepared, "logging"))
    try:
        run.wait_for_line("app: handled request 3")
    finally:
        code = run.stop()
    assert code == 0, run.err
    logged = [l for l in run.lines if "app: handled request" in l]
    assert all(l.startswith("[collector] ") for l in logged), run.out
    numbers = [int(l.rsplit(" ", 1)[1]) for l in logged]
    assert numbers[:3] == [1, 2, 3], "the collector prints the log from its first line, in order"
    assert not any(l.startswith("[app] ") for l in run.lines), "the app itself prints nothing"
    started = [l for l in run.err_lines if l.endswith(")") and ": started (pid " in l]
    assert [l.split(":")[2].strip() for l in started][:2] == ["collector", "app"], "the sidecar starts first"
    assert pods.leftovers() == []


def test_adapter_reserves_the_legacy_status_in_the_new_format(pods, prepared):
    run = pods.start(example_manifest(pods, prepared, "adapter"))
    try:
        run.wait_for_line("[client] scraped: legacy_uptime_seconds", timeout=20)
    finally:
        code = run.stop()
    assert code == 0, run.err
    scraped = [l for l in run.lines if l.startswith("[client] scraped: legacy_")]
    m = re.fullmatch(r"\[client\] scraped: legacy_uptime_seconds (\d+) legacy_queue_length (\d+)", scraped[0])
    assert m, scraped[0]
    assert int(m.group(2)) == int(m.group(1)) % 7, "the values are the legacy app's, renamed, not made up"
    assert not any("=" in l for l in scraped), "nothing of the legacy format passes through"
    assert pods.leftovers() == []


def test_demo_runs_to_completion_and_prints_the_page(session_dir):
    """The README's first command: the page, an in-place update of httpd with the infra unchanged, nothing left."""
    build_dir = os.environ.get("PEA_BUILD_DIR") or os.path.join(helpers.REPO, "build")
    netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    tmp_before = {e for e in os.listdir("/tmp") if e.startswith("pea-demo.")}
    env = dict(os.environ, PEA_SKIP_INSTALL="1", PEA_BUILD_DIR=build_dir)
    p = subprocess.run([os.path.join(EXAMPLES, "demo")], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, f"out:\n{p.stdout}\nerr:\n{p.stderr}"
    lines = p.stdout.splitlines()
    at = lines.index("+ wget -qO- http://198.18.0.2:8080/")
    page = "\n".join(lines[at + 1:at + 5])
    assert f"webapp {web_version()}," in page, p.stdout
    assert "recreated: httpd" in lines, p.stdout
    assert any(l.startswith("# the same infra") for l in lines), p.stdout
    assert "installed: index.html" in lines, p.stdout
    assert lines[-1].startswith("+ nothing left"), p.stdout
    assert p.stderr == "", p.stderr
    netns_after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not any(n.startswith("pea-demo-") for n in netns_after - netns_before), "the demo's netns is deleted"
    tmp_after = {e for e in os.listdir("/tmp") if e.startswith("pea-demo.")}
    assert tmp_after - tmp_before == set(), "the demo's temporary directory is removed"
