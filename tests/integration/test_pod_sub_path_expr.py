"""volumeMounts[].subPathExpr (issue 16): the subPath with $(VAR) references expanded from the container's
environment at each start, as the kubelet does it (a downward API $(POD_NAME) the typical use; "$$" a literal "$"; a
reference without a value an error), and the result opened below the volume as a subPath is: an expansion that is
absolute, climbs with "..", or goes through a symlink out of the volume is refused, and nothing is made outside."""
import os

import pytest

from pods import container

pytestmark = pytest.mark.pea_only

POD_NAME_ENV = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def host_volume(path):
    return [{"name": "h", "hostPath": {"path": str(path)}}]


def start_failure(err):
    """The one "failed to start" line of a pod run whose container could not start."""
    lines = [line for line in err.splitlines() if "failed to start" in line]
    assert len(lines) == 1, err
    return lines[0]


def test_sub_path_expr_expands_the_downward_api_and_env(pods, tmp_path):
    host = tmp_path / "vol"
    host.mkdir()
    name = pods.name()
    m = pods.manifest([container(
        "a", pods.rootfs, "echo from-$POD_NAME > /logs/out; echo literal > /lit/out",
        env=[POD_NAME_ENV, {"name": "KIND", "value": "logs"}],
        volumeMounts=[{"name": "h", "mountPath": "/logs", "subPathExpr": "$(KIND)/$(POD_NAME)"},
                      {"name": "h", "mountPath": "/lit", "subPathExpr": "cost-$$(KIND)"}])],
        volumes=host_volume(host), name=name)
    code, out, err = pods.run(m)
    assert code == 0, err
    assert (host / "logs" / name / "out").read_text() == f"from-{name}\n"
    assert (host / "cost-$(KIND)" / "out").read_text() == "literal\n", "$$ is a literal $, not a reference"


def test_a_reference_without_a_value_fails_the_start_naming_each(pods, tmp_path):
    host = tmp_path / "vol"
    host.mkdir()
    m = pods.manifest([container("a", pods.rootfs, "true", env=[{"name": "EMPTY", "value": ""}],
                                 volumeMounts=[{"name": "h", "mountPath": "/x",
                                                "subPathExpr": "$(NOPE)/$(EMPTY)/$(NOPE)"}])],
                      volumes=host_volume(host))
    code, out, err = pods.run(m)
    assert code == 128, (code, out, err)
    assert start_failure(err).endswith(
        "container a: subPathExpr $(NOPE)/$(EMPTY)/$(NOPE): missing value for EMPTY, NOPE"), err
    assert os.listdir(host) == []


@pytest.mark.parametrize("value, refusal", [
    ("/etc", "container a: subPathExpr $(D)/x expands to /etc/x, an absolute path: refused"),
    ("../../../../..", 'container a: subPathExpr $(D)/x expands to ../../../../../x, which contains "..": refused'),
    ("in/..", 'container a: subPathExpr $(D)/x expands to in/../x, which contains "..": refused'),
])
def test_an_expansion_leading_out_of_the_volume_is_refused(pods, tmp_path, value, refusal):
    host = tmp_path / "vol"
    host.mkdir()
    m = pods.manifest([container("a", pods.rootfs, "ls /x", env=[{"name": "D", "value": value}],
                                 volumeMounts=[{"name": "h", "mountPath": "/x", "subPathExpr": "$(D)/x"}])],
                      volumes=host_volume(host))
    code, out, err = pods.run(m)
    assert code == 128, (code, out, err)
    assert out == "", out
    assert start_failure(err).endswith(refusal), err
    assert os.listdir(host) == [], "nothing was made"


@pytest.mark.parametrize("link", ["/", "../../../../../../.."])
def test_an_expansion_through_a_symlink_out_of_the_volume_is_refused(pods, tmp_path, link):
    """The expanded path goes through the same walk below the volume as a subPath: a symlink in the volume that
    leads out of it is refused, and nothing is made through it (a missing subPath is otherwise made)."""
    host = tmp_path / "vol"
    host.mkdir()
    os.symlink(link, host / "escape")
    m = pods.manifest([container("a", pods.rootfs, "ls /x", env=[{"name": "D", "value": "escape"}],
                                 volumeMounts=[{"name": "h", "mountPath": "/x", "subPathExpr": "$(D)/pea-made-$(D)"}])],
                      volumes=host_volume(host))
    code, out, err = pods.run(m)
    assert code == 128, (code, out, err)
    assert out == "", out
    assert start_failure(err).endswith(
        "container a: subPathExpr $(D)/pea-made-$(D) (escape/pea-made-escape) in volume h leads out of the volume: "
        "refused"), err
    assert sorted(os.listdir(host)) == ["escape"]
    assert not os.path.lexists("/pea-made-escape"), "made through the symlink, on the host"


def test_sub_path_expr_and_sub_path_together_are_refused_before_anything_runs(pods, tmp_path):
    m = pods.manifest([container("a", pods.rootfs, "true", volumeMounts=[
        {"name": "h", "mountPath": "/x", "subPath": "a", "subPathExpr": "$(B)"}])], volumes=host_volume(tmp_path))
    code, out, err = pods.run(m)
    assert code != 0 and code != 128, (code, out, err)
    assert "spec.containers[0].volumeMounts[0].subPathExpr: subPathExpr and subPath are mutually exclusive" in err, err
