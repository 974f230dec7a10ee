#!/usr/bin/python3
"""How many Pod manifests from Kubernetes' documentation run on pea unchanged but for their images (issue 16,
"Measure"), and the same list through `podman kube play` for comparison.

The manifests are not shipped with pea: give a directory of them, e.g. a copy of content/en/examples from the
kubernetes/website repository (every *.yaml, *.yml and *.json under it is read; files without a Pod, or without a
pod template for --templates, are counted by kind and skipped). Run as root from a built tree:

    tests/bench/k8s_examples.py --pea build/runtime/pea /path/to/content/en/examples
    tests/bench/k8s_examples.py --podman --json /tmp/k8s.json --report /tmp/k8s.md /path/to/examples

Each container's image (containers, initContainers, ephemeralContainers, in a Pod or a pod template) becomes a
busybox root filesystem made with examples/make-rootfs, since the machine may not reach any registry; with
--images-in-store the images stay as named (for a pea that pulls or finds them in its image store). Nothing else
is changed, unless --image-cmd gives the substituted image a CMD (a bare rootfs has none, so a container that
relies on its image's entrypoint, like nginx without a command, cannot run otherwise). The manifest is re-serialised as YAML with the substituted images. For each file: `pea pod apply
--dry-run` (validated?), then `pea pod apply` under a private --root and --data-root in a scratch directory, a
wait of --wait seconds and `pea pod ps -o json` (started? which containers run or exited how), then `pea pod rm
--force` of every pod of the file and a check that nothing is left: no pod state or data, mount, process naming
the scratch directory, or cgroup named after the pod. The first error line of a refusal is recorded; the report
groups them by the refused field; --all-refusals lists every field pea refuses in a file, not only the first (it
drops each refused field and validates again).

With --podman the same substituted files (image: localhost/pea-k8s-busybox, imported from the same rootfs with
`podman import`) go through `podman kube play --network none` and `podman kube play --down`, with private storage
under the scratch directory. Podman's runc asks for RLIMIT_NPROC/NOFILE above what a container host may allow; the
harness passes podman a small wrapper runtime that lowers those limits in config.json to the caller's hard limits
and then runs runc, so that this machine's limits are not counted against podman.
"""
import argparse
import collections
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAKE_ROOTFS = os.path.join(REPO, "examples", "make-rootfs")
PODMAN_IMAGE = "localhost/pea-k8s-busybox"
# Kinds whose objects carry a pod template, and where it sits.
TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"), "ReplicaSet": ("spec", "template"), "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"), "Job": ("spec", "template"), "ReplicationController": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def load_documents(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def pod_specs(doc):
    """The pod specs of one object: its own (a Pod) or its template's (a workload)."""
    if not isinstance(doc, dict):
        return []
    kind = doc.get("kind")
    if kind == "Pod":
        spec = doc.get("spec")
        return [spec] if isinstance(spec, dict) else []
    if kind in TEMPLATE_PATHS:
        node = doc
        for key in TEMPLATE_PATHS[kind]:
            node = node.get(key) if isinstance(node, dict) else None
        spec = node.get("spec") if isinstance(node, dict) else None
        return [spec] if isinstance(spec, dict) else []
    return []


def substitute_images(docs, image):
    """Every container image in DOCS becomes IMAGE (in place); the original names, for the report."""
    originals = []
    for doc in docs:
        for spec in pod_specs(doc):
            for key in CONTAINER_LISTS:
                for c in spec.get(key) or []:
                    if isinstance(c, dict) and "image" in c:
                        originals.append(str(c["image"]))
                        if image is not None:
                            c["image"] = image
    return originals


def relies_on_entrypoint(docs):
    """Containers with neither command nor args: they run what the image says, which a bare rootfs cannot."""
    names = []
    for doc in docs:
        for spec in pod_specs(doc):
            for key in ("containers", "initContainers"):
                for c in spec.get(key) or []:
                    if isinstance(c, dict) and not c.get("command") and not c.get("args"):
                        names.append(c.get("name", "?"))
    return names


def give_image_command(docs, argv):
    """What an image's CMD would do: containers with neither command nor args get ARGV as their command."""
    for doc in docs:
        for spec in pod_specs(doc):
            for key in CONTAINER_LISTS:
                for c in spec.get(key) or []:
                    if isinstance(c, dict) and not c.get("command") and not c.get("args"):
                        c["command"] = list(argv)


def pod_names(docs):
    return [d.get("metadata", {}).get("name") for d in docs
            if isinstance(d, dict) and d.get("kind") == "Pod" and isinstance(d.get("metadata"), dict)]


def first_error(text):
    """The first line that says what went wrong (pea prints one `pea: ...` line; podman prints `Error: ...`)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("pea:", "Error:", "error:")) and "notice" not in ln:
            return ln
    return lines[0] if lines else ""


def notices(text):
    return [ln.strip() for ln in text.splitlines() if "ignor" in ln or "notice" in ln.lower()]


def normalise(line):
    """An error line reduced to what is common to many manifests: the field and the complaint, not names."""
    line = re.sub(r"^pea: ", "", line)
    line = re.sub(r"^\S+\.(yaml|yml|json): ", "", line)            # the file
    line = re.sub(r"\[\d+\]", "[]", line)                          # list indexes
    line = re.sub(r"line \d+", "line N", line)
    line = re.sub(r"\bpod \S+: ", "", line)                       # pod, container and volume names
    line = re.sub(r"\bcontainer \S+ failed to start: create \S+: ", "container failed to start: ", line)
    line = re.sub(r"\] \([^)]*\):", "]:", line)
    line = re.sub(r"/sys/fs/cgroup\S*", "CGROUP", line)
    line = re.sub(r'"[^"]*"', '"…"', line)
    return line


def drop_field(docs, line):
    """Remove from DOCS the field an `unknown field` or `not supported` error line names; False if it cannot."""
    m = re.match(r"^(?:pea: )?(?:\S+\.(?:yaml|yml|json): )?(spec\.[^ :]+)(?: \([^)]*\))?: "
                 r"(unknown field|not supported)", line)
    if not m:
        return False
    tokens = []
    for part in m.group(1).split("."):
        name, _, rest = part.partition("[")
        tokens.append(name)
        tokens += [int(i) for i in re.findall(r"(\d+)\]", "[" + rest)] if rest else []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Pod":
            node, i = doc, 0
            while i < len(tokens) - 1:
                t = tokens[i]
                if isinstance(node, dict) and t not in node:
                    break                                          # a key with dots in it: the rest is the key
                node = node[t] if isinstance(node, dict) else node[t] if isinstance(t, int) else None
                i += 1
            key = tokens[i] if i == len(tokens) - 1 else ".".join(str(t) for t in tokens[i:])
            if isinstance(node, dict) and key in node:
                del node[key]
                return True
            if isinstance(node, list) and isinstance(key, int) and key < len(node):
                del node[key]
                return True
    return False


def all_refusals(pea, docs, path, first, limit=30):
    """Every field pea refuses in the file, not only the first: drop each refused field and validate again."""
    import copy
    docs = copy.deepcopy(docs)
    found, line = [], first
    while line and len(found) < limit:
        found.append(line)
        if not drop_field(docs, line):
            break
        with open(path, "w") as f:
            yaml.safe_dump_all(docs, f, sort_keys=False)
        code, _, err = pea.cli("pod", "apply", "--dry-run", "-f", path, "--data-root", pea.data)
        line = "" if code == 0 else first_error(err)
    return found


def run(argv, timeout, env=None):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return None, out, err + f"\n(timed out after {timeout} s)"


def mount_points():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def cgroups_named(names, base="/sys/fs/cgroup", depth=4):
    found = []
    pats = [re.compile(r"(^|[^A-Za-z0-9])" + re.escape(n) + r"($|[^A-Za-z0-9-])") for n in names if n]
    base_depth = base.rstrip("/").count("/")
    for dirpath, dirnames, _ in os.walk(base):
        if dirpath.count("/") - base_depth >= depth:
            dirnames[:] = []
        for d in dirnames:
            if any(p.search(d) for p in pats):
                found.append(os.path.join(dirpath, d))
    return set(found)


def processes_naming(path):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if path in cmd:
            found.append(f"{pid} {cmd[:80]}")
    return found


class Pea:
    def __init__(self, binary, scratch):
        self.binary = binary
        self.root = os.path.join(scratch, "pea-state")
        self.data = os.path.join(scratch, "pea-data")
        self.scratch = scratch

    def cli(self, *args, timeout=60):
        return run([self.binary, "--root", self.root] + list(args), timeout)

    def measure(self, manifest, names, wait):
        r = {"validated": False, "started": False, "error": "", "notices": [], "containers": {}, "leaks": []}
        before = cgroups_named(names)
        code, out, err = self.cli("pod", "apply", "--dry-run", "-f", manifest, "--data-root", self.data)
        r["notices"] = notices(err)
        if code != 0:
            r["error"] = first_error(err) or f"exit {code}"
            return r
        r["validated"] = True
        code, out, err = self.cli("pod", "apply", "-f", manifest, "--data-root", self.data, timeout=120)
        r["notices"] = sorted(set(r["notices"] + notices(err)))
        if code == 0:
            r["started"] = True
        else:
            r["error"] = first_error(err) or f"exit {code}"
        if r["started"]:
            time.sleep(wait)
            for name in names:
                code, out, _ = self.cli("pod", "ps", "-o", "json", name)
                try:
                    for c in json.loads(out) if code == 0 else []:
                        r["containers"][f"{name}/{c.get('name')}"] = {
                            k: c.get(k) for k in ("state", "status", "exitCode", "exit_code", "restarts", "ready")
                            if k in c}
                except ValueError:
                    pass
        self.remove_all()
        r["leaks"] = self.leftovers(names, before)
        return r

    def remove_all(self):
        pods = os.path.join(self.root, "pods")
        names = os.listdir(pods) if os.path.isdir(pods) else []
        if names:
            self.cli("pod", "rm", "--force", *names, timeout=120)

    def leftovers(self, names, cgroups_before):
        problems = []
        for d in (os.path.join(self.root, "pods"), os.path.join(self.data, "pods")):
            if os.path.isdir(d) and os.listdir(d):
                problems.append(f"left in {d}: {os.listdir(d)}")
        for point in mount_points():
            if point.startswith(self.scratch):
                problems.append(f"mount left: {point}")
        deadline = time.monotonic() + 3
        while processes_naming(self.root) and time.monotonic() < deadline:
            time.sleep(0.1)
        problems += [f"process left: {p}" for p in processes_naming(self.root)]
        problems += [f"cgroup left: {c}" for c in sorted(cgroups_named(names) - cgroups_before)]
        return problems


RUNTIME_WRAPPER = """#!/usr/bin/python3
# Lowers process.rlimits in the bundle's config.json to this machine's hard limits, then runs runc (k8s_examples.py).
import json, os, resource, sys
args = sys.argv[1:]
if "create" in args and "--bundle" in args:
    path = os.path.join(args[args.index("--bundle") + 1], "config.json")
    with open(path) as f:
        spec = json.load(f)
    names = {"RLIMIT_NOFILE": resource.RLIMIT_NOFILE, "RLIMIT_NPROC": resource.RLIMIT_NPROC}
    for rl in spec.get("process", {}).get("rlimits", []):
        if rl.get("type") in names:
            hard = resource.getrlimit(names[rl["type"]])[1]
            if hard != resource.RLIM_INFINITY:
                rl["hard"] = min(rl["hard"], hard)
                rl["soft"] = min(rl["soft"], rl["hard"])
    with open(path, "w") as f:
        json.dump(spec, f)
os.execv(RUNC, ["runc"] + args)
"""


class Podman:
    """podman kube play, each manifest in its own network and mount namespace: the bridge, NAT rules, CNI state and
    netns files podman makes stay there (tmpfs over /var/lib and /run), never in the machine's own."""

    def __init__(self, scratch, rootfs):
        self.dir = os.path.join(scratch, "podman")
        os.makedirs(os.path.join(self.dir, "cni"), exist_ok=True)
        runc = shutil.which("runc")
        if not runc:
            raise RuntimeError("podman comparison needs runc")
        self.wrapper = os.path.join(self.dir, "runc-wrapper")
        with open(self.wrapper, "w") as f:
            f.write(RUNTIME_WRAPPER.replace("RUNC", repr(runc)))
        os.chmod(self.wrapper, 0o755)
        conf = os.path.join(self.dir, "containers.conf")
        with open(conf, "w") as f:
            f.write(f'[network]\nnetwork_config_dir = "{os.path.join(self.dir, "cni")}"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.base = ["podman", "--root", os.path.join(self.dir, "root"), "--runroot", os.path.join(self.dir, "run"),
                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--runtime", self.wrapper]
        tar = os.path.join(self.dir, "rootfs.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
        code, _, err = run(self.base + ["import", "--change",
                                        "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                        tar, PODMAN_IMAGE], 300, env=self.env)
        if code != 0:
            raise RuntimeError(f"podman import: {first_error(err)}")
        self.cgroups_before = self.podman_cgroups()

    @staticmethod
    def podman_cgroups():
        """The cgroup directories podman's cgroupfs manager makes (under libpod_parent in every hierarchy)."""
        found = set()
        for top in os.listdir("/sys/fs/cgroup"):
            base = os.path.join("/sys/fs/cgroup", top, "libpod_parent")
            for dirpath, dirnames, _ in os.walk(base):
                found.add(dirpath)
        return found

    def processes(self):
        """Processes started for this harness's podman (conmon names our directory) with their children."""
        pids = {int(p.split()[0]) for p in processes_naming(self.dir)}
        parents = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    parents[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
        grown = True
        while grown:
            more = {pid for pid, ppid in parents.items() if ppid in pids} - pids
            grown = bool(more)
            pids |= more
        return pids

    def measure(self, manifest, wait):
        r = {"started": False, "error": "", "containers": {}, "leaks": []}
        out = os.path.join(self.dir, "out")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        pm = " ".join(shlex.quote(x) for x in self.base)
        script = (f"mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /run || exit 99\n"
                  f"ip link set lo up\n"
                  f"timeout 180 {pm} kube play {shlex.quote(manifest)} >{out}/play.out 2>{out}/play.err\n"
                  f"echo $? >{out}/play.rc\n"
                  f"sleep {wait}\n"
                  f"{pm} ps -a --format json >{out}/ps.json 2>/dev/null\n"
                  f"timeout 180 {pm} kube play --down {shlex.quote(manifest)} >/dev/null 2>&1\n"
                  f"{pm} pod rm --all --force >/dev/null 2>&1\n"
                  f"{pm} rm --all --force >/dev/null 2>&1\n")
        code, _, err = run(["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", script],
                           600, env=self.env)
        if code == 99:
            raise RuntimeError(f"podman namespace set-up: {err.strip()}")
        try:
            with open(f"{out}/play.rc") as f:
                play = int(f.read())
            with open(f"{out}/play.err") as f:
                play_err = f.read()
        except (OSError, ValueError):
            play, play_err = None, err
        if play == 0:
            r["started"] = True
            try:
                with open(f"{out}/ps.json") as f:
                    for c in json.load(f):
                        if not c.get("IsInfra"):
                            r["containers"][",".join(c.get("Names", []))] = {"state": c.get("State"),
                                                                             "exitCode": c.get("ExitCode")}
            except (OSError, ValueError):
                pass
        else:
            # "Error: failed to start N containers" says less than the bracketed line before it, which names why.
            detail = [ln.strip("[] ") for ln in play_err.splitlines() if "starting container" in ln]
            r["error"] = detail[0] if detail else (first_error(play_err) or f"exit {play}")
        r["leaks"] = [f"process left: {p}" for p in sorted(self.processes())]
        return r

    def close(self):
        """Everything podman made goes: containers it failed to stop (an interrupted run), then its cgroups."""
        run(self.base + ["system", "reset", "--force"], 300, env=self.env)
        for pid in sorted(self.processes(), reverse=True):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(1)
        for path in sorted(self.podman_cgroups() - self.cgroups_before, key=len, reverse=True):
            try:
                os.rmdir(path)
            except OSError:
                pass


def collect(directory, templates):
    """(files to measure, {kind: [files]} of the others) under DIRECTORY."""
    measured, others = [], collections.defaultdict(list)
    for dirpath, _, files in os.walk(directory):
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml", ".json")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, directory)
            try:
                docs = load_documents(path)
            except yaml.YAMLError as e:
                measured.append((rel, None, f"not YAML: {str(e).splitlines()[0]}"))
                continue
            kinds = [d.get("kind") for d in docs if isinstance(d, dict)]
            if "Pod" in kinds or (templates and any(k in TEMPLATE_PATHS for k in kinds)):
                measured.append((rel, docs, None))
            else:
                for k in set(kinds) or {"(no kind)"}:
                    others[str(k)].append(rel)
    measured.sort()
    return measured, others


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", help="a directory of Kubernetes manifests (e.g. content/en/examples)")
    ap.add_argument("--pea", default=os.path.join(REPO, "build", "runtime", "pea"))
    ap.add_argument("--rootfs", help="the rootfs that replaces every image (default: made with make-rootfs)")
    ap.add_argument("--images-in-store", action="store_true", help="keep images as named")
    ap.add_argument("--image-cmd", metavar="CMD",
                    help="the substituted image's CMD, e.g. 'sleep 3600': containers with neither command nor args "
                         "run it, as they would run their real image's entrypoint")
    ap.add_argument("--all-refusals", action="store_true",
                    help="list every field pea refuses in a file (drop each refused field, validate again)")
    ap.add_argument("--templates", action="store_true",
                    help="also run files whose objects carry a pod template (Deployment, Job, ...)")
    ap.add_argument("--podman", action="store_true", help="the same files through podman kube play")
    ap.add_argument("--no-pea", action="store_true", help="only podman")
    ap.add_argument("--wait", type=float, default=3.0, help="seconds a started pod runs before it is inspected")
    ap.add_argument("--only", help="a regular expression: measure only files whose path matches")
    ap.add_argument("--json", help="write every result here")
    ap.add_argument("--report", help="write a Markdown summary here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("k8s_examples.py: run as root (pods need namespaces, mounts and cgroups)")

    scratch = tempfile.mkdtemp(prefix="pea-k8s-examples-", dir="/tmp")
    results = []
    podman = None
    try:
        rootfs = a.rootfs or os.path.join(scratch, "rootfs")
        if not a.rootfs and not a.images_in_store:
            subprocess.run([MAKE_ROOTFS, rootfs], check=True, stdout=subprocess.DEVNULL)
        elif not a.rootfs and a.podman:
            subprocess.run([MAKE_ROOTFS, rootfs], check=True, stdout=subprocess.DEVNULL)
        pea = None if a.no_pea else Pea(os.path.abspath(a.pea), scratch)
        if a.podman:
            podman = Podman(scratch, rootfs)
        measured, others = collect(a.directory, a.templates)
        work = os.path.join(scratch, "manifests")
        for rel, docs, parse_error in measured:
            if a.only and not re.search(a.only, rel):
                continue
            r = {"file": rel}
            if parse_error:
                r.update(pea={"validated": False, "started": False, "error": parse_error},
                         podman={"started": False, "error": parse_error} if podman else None)
                results.append(r)
                print(f"{rel}: {parse_error}", flush=True)
                continue
            r["kinds"] = [d.get("kind") for d in docs if isinstance(d, dict)]
            r["images"] = substitute_images(docs, None)
            r["entrypoint_only"] = relies_on_entrypoint(docs)
            names = pod_names(docs)
            if a.image_cmd:
                give_image_command(docs, shlex.split(a.image_cmd))
            if pea:
                substitute_images(docs, None if a.images_in_store else os.path.abspath(rootfs))
                path = os.path.join(work, "pea", rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    yaml.safe_dump_all(docs, f, sort_keys=False)
                r["pea"] = pea.measure(path, names, a.wait)
                if a.all_refusals and not r["pea"]["validated"]:
                    r["pea"]["refusals"] = all_refusals(pea, docs, path + ".all.yaml", r["pea"]["error"])
            if podman:
                substitute_images(docs, None if a.images_in_store else PODMAN_IMAGE)
                path = os.path.join(work, "podman", rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    yaml.safe_dump_all(docs, f, sort_keys=False)
                r["podman"] = podman.measure(path, a.wait)
            results.append(r)
            line = [rel]
            if pea:
                p = r["pea"]
                line.append("pea: " + ("ran" if p["started"] else "valid" if p["validated"] else "refused") +
                            (f" ({p['error']})" if p["error"] else "") + (f" LEAKS {p['leaks']}" if p["leaks"] else ""))
            if podman:
                q = r["podman"]
                line.append("podman: " + ("ran" if q["started"] else "failed") + (f" ({q['error']})" if q["error"]
                                                                                    else ""))
            print(" | ".join(line), flush=True)
        summary = summarise(results, others, pea is not None, podman is not None)
        print(summary)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"results": results, "others": others}, f, indent=1)
        if a.report:
            with open(a.report, "w") as f:
                f.write(summary)
    finally:
        if podman:
            podman.close()
        if pea:
            pea.remove_all()
        if not a.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def summarise(results, others, with_pea, with_podman):
    n = len(results)
    out = [f"# Kubernetes documentation manifests: {n} files measured", ""]
    if with_pea:
        v = sum(1 for r in results if r.get("pea") and r["pea"]["validated"])
        s = sum(1 for r in results if r.get("pea") and r["pea"]["started"])
        leaks = [r["file"] for r in results if r.get("pea") and r["pea"].get("leaks")]
        out.append(f"pea: {v}/{n} validated, {s}/{n} started" + (f"; LEAKS after: {leaks}" if leaks else
                                                                  "; nothing left behind"))
    if with_podman:
        s = sum(1 for r in results if r.get("podman") and r["podman"]["started"])
        out.append(f"podman kube play: {s}/{n} started")
    out.append("")
    for who in ("pea", "podman") if with_podman else ("pea",):
        if who == "pea" and not with_pea:
            continue
        counts = collections.Counter(normalise(r[who]["error"]) for r in results
                                     if r.get(who) and r[who]["error"])
        out.append(f"## {who}: refusals by first error line")
        out.append("")
        out.append("| manifests | error |")
        out.append("| ---: | --- |")
        for line, c in counts.most_common():
            out.append(f"| {c} | {line.replace('|', '/')} |")
        out.append("")
    out.append("## Not measured (no Pod" + (" and no pod template" if True else "") + ")")
    out.append("")
    for kind, files in sorted(others.items(), key=lambda kv: -len(kv[1])):
        out.append(f"- {kind}: {len(files)}")
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
