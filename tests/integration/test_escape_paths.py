"""Path swaps on the host side of a pod: what pea empties and makes again at a container's restart is the directory
it reached without following a symlink, never what a path swapped meanwhile leads to. Only the user running pea can
write the pod's data directory (test_escape_pods.py), so the test stands in for that writer: it swaps the directory
for a symlink before the restart and checks that the directory the symlink names is left untouched."""
import os
import shutil

import pytest

import helpers
from pods import container

pytestmark = pytest.mark.pea_only


def test_a_restart_does_not_follow_a_symlink_swapped_in_for_the_containers_directory(pods, tmp_path):
    # Two layers: the container runs on an overlay with an upper under containers/a, remade at every start.
    top = tmp_path / "top"
    top.mkdir()
    (top / "from-top-layer").write_text("top\n")
    outside = tmp_path / "outside"
    (outside / "a").mkdir(parents=True)
    (outside / "a" / "marker").write_text("not pea's\n")
    vol = [{"name": "d", "mountPath": "/d"}]
    # The first instance waits for the swap, then fails; a second one would run (and exit 0) from a fresh upper.
    script = ("echo run >> /d/runs; n=$(wc -l < /d/runs); echo attempt $n; "
              "if [ $n -eq 1 ]; then while [ ! -e /d/go ]; do sleep 0.05; done; exit 1; fi; exit 0")
    name = pods.name()
    m = pods.manifest([container("a", [pods.rootfs, str(top)], script, volumeMounts=vol)],
                      volumes=[{"name": "d", "emptyDir": {}}], spec={"restartPolicy": "OnFailure"}, name=name)
    run = pods.start(m)
    data_dir = os.path.join(pods.data, "pods", name)
    containers = os.path.join(data_dir, "containers")
    kept = containers + ".kept"
    try:
        run.wait_for_line("[a] attempt 1")
        assert os.path.isdir(os.path.join(containers, "a", "upper"))
        os.rename(containers, kept)
        os.symlink(str(outside), containers)
        with open(os.path.join(data_dir, "volumes", "d", "go"), "w"):
            pass
        # The restart comes after a 1 s backoff; it either fails (the symlink refused) or runs attempt 2.
        helpers.wait_until(lambda: "restarting in" in run.err, 15, "the restart")
        helpers.wait_until(lambda: any("attempt 2" in l for l in run.lines) or "Too many levels" in run.err
                           or run.proc.poll() is not None, 15, "the restart's outcome")
        marker = outside / "a" / "marker"
        assert marker.exists() and marker.read_text() == "not pea's\n", \
            "the restart emptied the directory a swapped symlink led to"
        assert sorted(os.listdir(outside / "a")) == ["marker"], "the restart made the upper where the symlink led"
        assert not any("attempt 2" in l for l in run.lines), "the container ran from the swapped directory"
        assert f"a: failed to start: open {containers}: Too many levels of symbolic links" in run.err, run.err
    finally:
        if os.path.islink(containers):
            os.unlink(containers)
        if os.path.isdir(kept):
            shutil.rmtree(containers, ignore_errors=True)
            os.rename(kept, containers)
        run.stop()
