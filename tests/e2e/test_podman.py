"""podman 4.3 + conmon with pea as the OCI runtime (`--runtime PEA`, private storage and configuration)."""
import fcntl
import json
import os
import pty
import select
import subprocess
import termios
import time

import pytest

from e2e import IMAGE, cgroup2_has, wait_until


def test_run_output(podman):
    r = podman.ok("run", "--rm", IMAGE, "echo", "hello from pea")
    assert r.out == "hello from pea\n"


def test_runtime_from_containers_conf(podman, name):
    """Without --runtime, podman takes pea from containers.conf's [engine] runtime / [engine.runtimes] (README)."""
    r = podman("run", "--name", name, IMAGE, "true", runtime=False)
    assert r.code == 0, r
    info = json.loads(podman.ok("inspect", name, runtime=False).out)[0]
    assert info["OCIRuntime"] == "pea"
    podman.ok("rm", name)


@pytest.mark.parametrize("cmd,code", [(["true"], 0), (["sh", "-c", "exit 3"], 3), (["/etc/passwd"], 126),
                                      (["no-such-command"], 127), (["/no/such/file"], 127)])
def test_exit_codes(podman, cmd, code):
    r = podman("run", "--rm", IMAGE, *cmd)
    assert r.code == code, r
    if code == 127:
        assert "executable file not found" in r.err or "no such file" in r.err.lower(), r


def test_piped_stdin(podman):
    r = podman.ok("run", "--rm", "-i", IMAGE, "sh", "-c", "tr a-z A-Z; echo done", input="piped input\n")
    assert r.out == "PIPED INPUT\ndone\n"


def test_env_workdir_user_groups(podman):
    r = podman.ok("run", "--rm", "-e", "FOO=bar baz", "-w", "/tmp", "-u", "1000:1000", "--group-add", "2000",
                  IMAGE, "sh", "-c", 'echo "$FOO"; pwd; id -u; id -g; id -G')
    assert r.out.splitlines() == ["bar baz", "/tmp", "1000", "1000", "1000 2000"]


def test_mounts(podman, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "in").write_text("from host\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    script = ("cat /data/in; echo out > /data/out; "
              "echo x > /ro/x 2>/dev/null && echo ro-writable || echo ro-refused; "
              "echo t > /scratch/t && grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs-ok")
    r = podman.ok("run", "--rm", "-v", f"{src}:/data", "-v", f"{ro}:/ro:ro", "--tmpfs", "/scratch:size=1m",
                  IMAGE, "sh", "-c", script)
    assert r.out.splitlines() == ["from host", "ro-refused", "tmpfs-ok"]
    assert (src / "out").read_text() == "out\n"
    assert os.listdir(ro) == []


def test_tmpfs_copies_up_the_image_directory(podman):
    """podman's --tmpfs passes "tmpcopyup" (runc's extension): the tmpfs starts with the image's files."""
    r = podman.ok("run", "--rm", "--tmpfs", "/www", IMAGE, "sh", "-c",
                  "grep ' /www tmpfs' /proc/mounts >/dev/null && cat /www/index.html && ls -ld /www/index.html")
    assert r.out.splitlines()[0] == "hello from the pod"
    assert r.out.splitlines()[1].startswith("-rw-r--r--")


def test_network_none_has_loopback(podman):
    """A new network namespace gets lo up (127.0.0.1 works), as with runc and crun."""
    r = podman.ok("run", "--rm", "--network", "none", IMAGE, "sh", "-c",
                  "ip -o addr show lo; httpd -p 127.0.0.1:8081 -h /www && wget -q -O - http://127.0.0.1:8081/")
    assert "inet 127.0.0.1/8" in r.out
    assert r.out.endswith("hello from the pod\n"), r


def test_read_only_rootfs(podman):
    r = podman.ok("run", "--rm", "--read-only", IMAGE, "sh", "-c",
                  "touch /etc/x 2>/dev/null && echo writable || echo refused; touch /tmp/ok && echo tmp-ok")
    # podman's --read-only keeps /tmp, /var/tmp and /run writable tmpfs (read_only_tmpfs)
    assert r.out.splitlines() == ["refused", "tmp-ok"]


CAP_NUMBERS = {name: i for i, name in enumerate(
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE "
    "NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT "
    "SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL "
    "SETFCAP".split())}
CAP_NUMBERS = {"CAP_" + k: v for k, v in CAP_NUMBERS.items()}


def _caps(out):
    return {line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines() if line.startswith("Cap")}


def test_default_caps_and_seccomp(podman):
    r = podman.ok("run", "--rm", IMAGE, "sh", "-c", "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status")
    caps = _caps(r.out)
    # exactly podman's default set (containers.conf default_capabilities), in every set but the ambient one
    wanted = podman.default_capabilities()
    assert wanted and "CAP_SYS_ADMIN" not in wanted
    mask = sum(1 << CAP_NUMBERS[c] for c in wanted)
    assert (caps["CapEff"], caps["CapPrm"], caps["CapBnd"], caps["CapAmb"]) == (mask, mask, mask, 0), r.out
    assert "Seccomp:\t2" in r.out  # filter mode: podman's default seccomp profile is loaded
    r = podman.ok("run", "--rm", "--security-opt", "seccomp=unconfined", IMAGE, "grep", "^Seccomp:", "/proc/self/status")
    assert r.out.split() == ["Seccomp:", "0"]


def test_seccomp_profile_applied(podman, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    r = podman("run", "--rm", "--security-opt", f"seccomp={profile}", IMAGE, "sh", "-c",
               "mkdir /tmp/d || echo refused; touch /tmp/f && echo touch-ok")
    assert r.out.splitlines() == ["refused", "touch-ok"], r
    assert "Operation not permitted" in r.err


def test_cap_drop_all_no_new_privileges(podman):
    r = podman.ok("run", "--rm", "--cap-drop", "all", "--security-opt", "no-new-privileges", IMAGE,
                  "sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; chown 1 /tmp || echo denied")
    caps = _caps(r.out)
    assert caps["CapEff"] == 0 and caps["CapBnd"] == 0
    assert "NoNewPrivs:\t1" in r.out
    assert "denied" in r.out


def test_detached_exec_stop_logs_rm(podman, name):
    podman.ok("run", "-d", "--name", name, IMAGE, "sh", "-c",
              "echo started; trap 'echo got-term; exit 0' TERM; while :; do sleep 0.1; done")
    wait_until(lambda: "started" in podman("logs", name).out, 10, "the container's first line")
    r = podman.ok("exec", name, "sh", "-c", "echo in-exec")
    assert r.out == "in-exec\n"
    r = podman.ok("exec", "-i", name, "cat", input="through exec stdin\n")
    assert r.out == "through exec stdin\n"
    r = podman.ok("exec", "-u", "1000:2000", "-e", "X=y", "-w", "/home", name, "sh", "-c", 'id -u; id -g; echo $X; pwd')
    assert r.out.splitlines() == ["1000", "2000", "y", "/home"]
    assert podman("exec", name, "sh", "-c", "exit 7").code == 7
    assert podman("exec", name, "no-such-command").code == 127
    podman.ok("stop", "-t", "10", name)
    state = json.loads(podman.ok("inspect", name).out)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0, state
    assert podman.ok("logs", name).out.splitlines() == ["started", "got-term"]
    podman.ok("rm", name)
    assert podman("inspect", name).code != 0


def test_second_start(podman, name):
    r = podman("run", "--name", name, IMAGE, "sh", "-c", "echo run")
    assert r.code == 0 and r.out == "run\n", r
    r = podman.ok("start", "--attach", name)
    assert r.out == "run\n"
    assert podman.ok("logs", name).out == "run\nrun\n"
    podman.ok("rm", name)


def _pty_run(argv, env, send=None, timeout=20):
    """Run ARGV with a new pty as its controlling terminal and stdio; returns (exit code, everything it printed)."""
    master, slave = pty.openpty()

    def ctty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=ctty)
    os.close(slave)
    out = b""
    if send is not None:
        time.sleep(0.5)
        os.write(master, send)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the last slave is closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=10)
    os.close(master)
    return code, out.decode(errors="replace")


def test_tty(podman):
    code, out = _pty_run(podman.argv("run", "--rm", "-t", IMAGE, "sh", "-c", "tty; stty size; exit 5"),
                         podman.env)
    assert code == 5, out
    assert "/dev/pts/0" in out, out


def test_interactive_tty(podman):
    code, out = _pty_run(podman.argv("run", "--rm", "-it", IMAGE, "sh"), podman.env,
                         send=b"echo in-$((6*7))\rexit 9\r")
    assert code == 9, out
    assert "in-42" in out, out


def test_exec_tty(podman, name):
    podman.ok("run", "-d", "--name", name, IMAGE, "sleep", "1000")
    code, out = _pty_run(podman.argv("exec", "-it", name, "sh", "-c", "tty; exit 2"), podman.env)
    assert code == 2, out
    assert "/dev/pts/" in out, out
    podman.ok("rm", "-f", "-t", "0", name)


def test_kill_signal(podman, name):
    podman.ok("run", "-d", "--name", name, IMAGE, "sh", "-c",
              "trap 'echo usr1; exit 12' USR1; echo ready; while :; do sleep 0.1; done")
    wait_until(lambda: "ready" in podman("logs", name).out, 10, "ready")
    podman.ok("kill", "-s", "USR1", name)
    podman.ok("wait", name)
    state = json.loads(podman.ok("inspect", name).out)[0]["State"]
    assert state["ExitCode"] == 12, state
    assert "usr1" in podman.ok("logs", name).out
    podman.ok("run", "-d", "--name", name + "k", IMAGE, "sleep", "1000")
    podman.ok("kill", name + "k")
    assert podman.ok("wait", name + "k").out.strip() == "137"
    podman.ok("rm", name, name + "k")


def test_pause_unpause(podman, name):
    podman.ok("run", "-d", "--name", name, IMAGE, "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/t; sleep 0.05; done")
    time.sleep(0.3)
    podman.ok("pause", name)
    assert json.loads(podman.ok("inspect", name).out)[0]["State"]["Status"] == "paused"
    first = podman("exec", name, "cat", "/tmp/t")  # exec into a paused container is refused
    assert first.code != 0
    podman.ok("unpause", name)
    assert json.loads(podman.ok("inspect", name).out)[0]["State"]["Status"] == "running"
    a = podman.ok("exec", name, "cat", "/tmp/t").out
    time.sleep(0.3)
    assert podman.ok("exec", name, "cat", "/tmp/t").out != a
    podman.ok("rm", "-f", "-t", "0", name)


def test_top(podman, name):
    podman.ok("run", "-d", "--name", name, IMAGE, "sleep", "1000")
    r = podman.ok("top", name)
    assert "sleep 1000" in r.out, r
    r = podman.ok("top", name, "pid", "args")
    assert "sleep 1000" in r.out, r
    podman.ok("rm", "-f", "-t", "0", name)


def test_pod_localhost(podman, name):
    pod = name + "-pod"
    podman.ok("pod", "create", "--name", pod, "--network", "none")
    podman.ok("run", "-d", "--pod", pod, "--name", name + "-web", IMAGE, "httpd", "-f", "-p", "127.0.0.1:8080",
              "-h", "/www")
    r = None
    for _ in range(50):
        r = podman("run", "--rm", "--pod", pod, IMAGE, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/")
        if r.code == 0:
            break
        time.sleep(0.1)
    assert r.code == 0 and r.out == "hello from the pod\n", r
    podman.ok("pod", "rm", "-f", "-t", "0", pod)


def test_memory_limit_clear_error(podman):
    have = cgroup2_has("memory")
    r = podman("run", "--rm", "--memory", "64m", IMAGE, "cat", "/sys/fs/cgroup/memory.max")
    if have:
        assert r.code == 0 and r.out.strip() == str(64 << 20), r
    else:
        assert r.code != 0, r
        assert 'memory.max needs the "memory" controller' in r.err, r


def test_pids_limit_where_the_controller_is(podman):
    """--pids-limit is written to pids.max where cgroup2 offers the pids controller, and fails with pea's clear
    error where it does not (this CI host's hybrid hierarchy)."""
    r = podman("run", "--rm", "--pids-limit", "50", IMAGE, "cat", "/sys/fs/cgroup/pids.max")
    if cgroup2_has("pids"):
        assert r.code == 0 and r.out.strip() == "50", r
    else:
        assert r.code != 0, r
        assert 'pids.max needs the "pids" controller' in r.err, r
