"""The container process: env, cwd, user, umask, hostname, oomScoreAdj and the fds it inherits."""
import os

import pytest

from helpers import parse_kv


def run_peatest(run, bundle, cid, *args, **kw):
    bundle.args("peatest", *args)
    r = run("run", "--bundle", bundle, cid, **kw)
    assert r.code == 0, f"exit {r.code}: {r.err}"
    return r.out


def test_hostname(run, bundle, cid):
    bundle.config["hostname"] = "box"
    assert parse_kv(run_peatest(run, bundle, cid, "hostname"))["hostname"] == "box"
    assert os.uname().nodename != "box"


@pytest.mark.pea_only  # runc 1.1 ignores domainname (it came in runc 1.2)
def test_domainname(run, bundle, cid):
    bundle.config["hostname"] = "box"
    bundle.config["domainname"] = "example.org"
    out = parse_kv(run_peatest(run, bundle, cid, "hostname"))
    assert (out["hostname"], out["domainname"]) == ("box", "example.org")


def test_env(run, bundle, cid):
    bundle.env("PATH=/bin", "GREETING=hello world", "EMPTY=")
    env = run_peatest(run, bundle, cid, "env").splitlines()
    assert "GREETING=hello world" in env and "EMPTY=" in env and "PATH=/bin" in env


def test_cwd(run, bundle, cid):
    bundle.process["cwd"] = "/home/test"
    assert run_peatest(run, bundle, cid, "cwd") == "cwd /home/test\n"


def test_user_and_additional_gids(run, bundle, cid):
    bundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000]}
    ids = parse_kv(run_peatest(run, bundle, cid, "ids"))
    assert (ids["uid"], ids["euid"], ids["gid"], ids["egid"]) == ("1000", "1000", "1000", "1000")
    assert sorted(ids["groups"].split()) == ["2000", "3000"]


def test_root_user_has_no_supplementary_groups_by_default(run, bundle, cid):
    ids = parse_kv(run_peatest(run, bundle, cid, "ids"))
    assert (ids["uid"], ids["gid"]) == ("0", "0")
    assert ids["groups"].split() in ([], ["0"])


def test_umask(run, bundle, cid):
    bundle.process["user"]["umask"] = 0o077
    assert run_peatest(run, bundle, cid, "umask") == "umask 0077\n"


def test_oom_score_adj(run, bundle, cid):
    bundle.process["oomScoreAdj"] = 500
    assert run_peatest(run, bundle, cid, "oom") == "oom_score_adj 500\n"


def test_stdio_is_not_a_tty_without_terminal(run, bundle, cid):
    out = parse_kv(run_peatest(run, bundle, cid, "isatty"))
    assert out == {"stdin": "0", "stdout": "0", "stderr": "0"}


@pytest.fixture
def extra_fds(tmp_path):
    """Five inheritable (non-cloexec) fds open in the caller, as a careless caller would leave them."""
    fds = [os.open(tmp_path / f"leak{i}", os.O_RDWR | os.O_CREAT) for i in range(5)]
    for fd in fds:
        os.set_inheritable(fd, True)
    yield fds
    for fd in fds:
        os.close(fd)


def test_only_stdio_reaches_the_container(run, bundle, cid, extra_fds):
    out = run_peatest(run, bundle, cid, "fds", close_fds=False)
    assert out == "fds 0 1 2\n"


def test_only_stdio_reaches_an_exec(run, bundle, cid, extra_fds, wait_for_status):
    bundle.args("peatest", "sleep", "100")
    run.ok("create", "--bundle", bundle, cid)
    run.ok("start", cid)
    wait_for_status(cid, "running")
    assert run.ok("exec", cid, "peatest", "fds", close_fds=False).out == "fds 0 1 2\n"


def test_preserve_fds(run, bundle, cid, tmp_path, extra_fds):
    """fds 3 and 4 pass through; the other inherited ones (extra_fds, above 4) do not."""
    source = tmp_path / "fd3"
    source.write_text("read through fd 3\n")
    sink = tmp_path / "fd4"
    with open(source) as three, open(sink, "w") as four:
        bundle.args("sh", "-c", "peatest fds; cat <&3; echo via-fd-4 >&4")
        r = run("run", "--preserve-fds", "2", "--bundle", bundle, cid, fds={3: three.fileno(), 4: four.fileno()},
                close_fds=False)
    assert r.code == 0, r.err
    assert r.out == "fds 0 1 2 3 4\nread through fd 3\n"
    assert sink.read_text() == "via-fd-4\n"
