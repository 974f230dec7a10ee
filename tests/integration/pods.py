"""Helpers for the pod tests: a busybox rootfs with every applet, manifests written from dicts, `pea pod run` in the
foreground (to completion, or in the background until the test stops it), and the leak checks a pod teardown must
pass: no state, data, mount, cgroup, process, veth or pinned namespace left."""
import json
import os
import signal
import subprocess
import threading

import helpers

MAKE_ROOTFS = os.path.join(helpers.REPO, "examples", "make-rootfs")


def build_rootfs(path):
    subprocess.run([MAKE_ROOTFS, path], check=True)
    return path


def ps(pods, name):
    """`pea pod ps -o json NAME` of a running Pods session, by container name."""
    code, out, err = pods.cli("pod", "ps", "--output", "json", name)
    assert code == 0, err
    return {c["name"]: c for c in json.loads(out)}


def ls(pods):
    """`pea pod ls -o json`, by pod name."""
    code, out, err = pods.cli("pod", "ls", "--output", "json")
    assert code == 0, err
    return {p["name"]: p for p in json.loads(out)}


def container(name, image, command, **extra):
    """A container entry of a manifest: COMMAND is a shell script run by sh -c."""
    entry = {"name": name, "image": image, "command": ["sh", "-c", command]}
    entry.update(extra)
    return entry


class PodRun:
    """A `pea pod run` in the background: output collected line by line, stopped with SIGTERM."""

    def __init__(self, argv, env):
        self.lines, self.err_lines = [], []
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err_lines), daemon=True)]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream, into):
        for line in stream:
            into.append(line.rstrip("\n"))

    @property
    def out(self):
        return "\n".join(self.lines)

    @property
    def err(self):
        return "\n".join(self.err_lines)

    def wait_for_line(self, text, timeout=15):
        helpers.wait_until(lambda: any(text in line for line in self.lines) or self.proc.poll() is not None,
                           timeout, f"output line {text!r}")
        assert any(text in line for line in self.lines), \
            f"no line {text!r}; pod exited {self.proc.returncode}\nout:\n{self.out}\nerr:\n{self.err}"

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for t in self._readers:
            t.join(5)
        return code


class Pods:
    def __init__(self, runtime, work_dir, rootfs, mark):
        self.runtime = runtime
        self.root = os.path.join(work_dir, "state")
        self.data = os.path.join(work_dir, "data")
        self.work_dir = work_dir
        self.rootfs = rootfs
        self.mark = mark
        self._n = 0
        self.names = []
        self.env = dict(os.environ, PEA_IT_MARK=mark)

    def name(self):
        """A pod name unique to the test and session (cgroups and veths carry it)."""
        self._n += 1
        n = f"p{self.mark.replace(':', '-').replace('it-', '')}-{self._n}"
        self.names.append(n)
        return n

    def manifest(self, containers, init=None, volumes=None, name=None, spec=None, pea=None):
        name = name or self.name()
        m = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
             "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2, "containers": containers}}
        if init:
            m["spec"]["initContainers"] = init
        if volumes:
            m["spec"]["volumes"] = volumes
        if spec:
            m["spec"].update(spec)
        # The mark in every container's environment finds their processes if a teardown leaks one.
        for c in m["spec"]["containers"] + m["spec"].get("initContainers", []):
            c.setdefault("env", []).append({"name": "PEA_IT_MARK", "value": self.mark})
        if pea:
            m["pea"] = pea
        path = os.path.join(self.work_dir, f"{name}.json")
        with open(path, "w") as f:
            json.dump(m, f)
        return path

    def argv(self, *args, netns=None):
        # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup2 mount of a hybrid host.
        prefix = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
        return prefix + [self.runtime, "--root", self.root] + list(args)

    def cli(self, *args, netns=None, timeout=60):
        """Any pea command with this test's --root: (exit code, stdout, stderr)."""
        p = subprocess.run(self.argv(*args, netns=netns), capture_output=True, text=True, env=self.env,
                           timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def run(self, manifest, timeout=60, netns=None):
        """`pea pod run` to completion: (exit code, stdout, stderr)."""
        p = subprocess.run(self.argv("pod", "run", "-f", manifest, "--data-root", self.data, netns=netns),
                           capture_output=True, text=True, env=self.env, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def apply(self, manifest, *extra, netns=None, env=None, timeout=120):
        """`pea pod apply`: the pod runs under pea-shim once it returns. (exit code, stdout, stderr)"""
        p = subprocess.run(self.argv("pod", "apply", "-f", manifest, "--data-root", self.data, *extra, netns=netns),
                           capture_output=True, text=True, env=env or self.env, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def state(self, name):
        """The pod's pod.json."""
        with open(os.path.join(self.root, "pods", name, "pod.json")) as f:
            return json.load(f)

    def start(self, manifest, netns=None):
        return PodRun(self.argv("pod", "run", "-f", manifest, "--data-root", self.data, netns=netns), self.env)

    def leftovers(self, names=None):
        """What a finished or removed pod must not leave behind (cgroups: of NAMES, by default every pod's)."""
        problems = []
        pods_dir = os.path.join(self.root, "pods")
        if os.path.isdir(pods_dir) and os.listdir(pods_dir):
            problems.append(f"pod state left: {os.listdir(pods_dir)}")
        data_pods = os.path.join(self.data, "pods")
        if os.path.isdir(data_pods) and os.listdir(data_pods):
            problems.append(f"pod data left: {os.listdir(data_pods)}")
        for point in helpers.mount_points():
            if point.startswith((self.root, self.data)):
                problems.append(f"mount left: {point}")
        for name in self.names if names is None else names:
            for path in helpers.marked_cgroups(name):
                problems.append(f"cgroup left: {path}")
        for pid, why in helpers.marked_processes(self.mark, (self.root, self.data), wait=2.0):
            problems.append(f"process left: {pid} ({why})")
        return problems

    def cleanup(self):
        """Force-remove every pod still there (the test failed midway), then report leftovers; a pea-shim still
        running (its command line names our --root) is reported and killed."""
        pods_dir = os.path.join(self.root, "pods")
        if os.path.isdir(pods_dir):
            for name in os.listdir(pods_dir):
                subprocess.run([self.runtime, "--root", self.root, "pod", "rm", "--force", name],
                               capture_output=True, env=self.env, timeout=60)
        problems = self.leftovers()
        for pid, _ in helpers.marked_processes(self.mark, (self.root,)):
            helpers.kill_and_reap(pid)
        return problems


def checked_pods(runtime, directory, rootfs, mark):
    """For a fixture: Pods under DIRECTORY, yielded; at teardown nothing of them may be left."""
    import pytest
    p = Pods(runtime, directory, rootfs, mark)
    yield p
    problems = p.cleanup()
    if problems:
        pytest.fail("pod teardown found leaks:\n  " + "\n  ".join(problems), pytrace=False)


class Events:
    """`pea pod events --output json` in the background, collected."""

    def __init__(self, pods, name):
        self.events = []
        self.proc = subprocess.Popen(pods.argv("pod", "events", "--output", "json", name), stdout=subprocess.PIPE,
                                     text=True, env=pods.env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def reasons(self, reason):
        return [e["message"] for e in list(self.events) if e.get("reason") == reason]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.reader.join(5)
