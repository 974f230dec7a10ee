# Pod cgroup limits, run inside the VM (busybox sh) by tests/vm/run-vm-tests after cgroup-limits.sh: the pod cgroup
# /pea/pod-<name> holds the sum of the app containers' limits, each container's own cgroup below it holds its own
# (cpu.weight from requests.cpu), a container past its memory limit is OOM-killed while the other keeps running,
# and no pod cgroup, state or data is left once the pod ends.
# Usage: pod-limits.sh BUILD_DIR. Prints "pod-limits: N passed, N failed" last.
build=$1
here=$(cd "$(dirname "$0")" && pwd)
pea="$build/runtime/pea"
# State and data on the guest's tmpfs (/run, /tmp): the shared checkout is 9p, the host root read-only.
root=/run/pea-vm-pod
data=/tmp/pea-vm-pod-data
work=/tmp/pea-vm-pods
rootfs=$work/rootfs
passed=0
failed=0
mkdir -p "$work" "$root" "$data"

pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }

# The expected cpu.weight for requests.cpu MILLIS: pod_config.c makes OCI shares millis*1024/1000 (at least 2),
# runtime/cgroup_resources.c maps shares [2, 262144] linearly onto weight [1, 10000].
weight_for() {
    s=$(($1 * 1024 / 1000))
    [ "$s" -lt 2 ] && s=2
    [ "$s" -gt 262144 ] && s=262144
    echo $((1 + (s - 2) * 9999 / 262142))
}

# container NAME SCRIPT RESOURCES_JSON: one manifest entry, SCRIPT run by sh -c (no double quotes in it).
container() {
    printf '{"name": "%s", "image": "%s", "command": ["sh", "-c", "%s"], "resources": %s}' "$1" "$rootfs" "$2" "$3"
}

# pod_manifest NAME CONTAINER...: $work/NAME.json, restartPolicy Never, a short grace period.
pod_manifest() {
    n=$1
    shift
    list=
    for c in "$@"; do list="${list:+$list, }$c"; done
    cat > "$work/$n.json" <<JSON
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "$n"},
 "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [$list]}}
JSON
}

# start_pod NAME: `pea pod run` in the background, stdout in $work/NAME.out, stderr (events) in $work/NAME.err.
start_pod() {
    "$pea" --root $root pod run -f "$work/$1.json" --data-root $data > "$work/$1.out" 2> "$work/$1.err" &
    pod_pid=$!
}

# wait_for FILE TEXT [SECONDS]: until FILE holds TEXT (fixed string); false on timeout.
wait_for() {
    i=0
    while [ $i -lt $((${3:-60} * 10)) ]; do
        grep -qF "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# stop_pod: SIGTERM to `pea pod run`, its exit status in pod_rc; after 60 s SIGKILL and `pod rm --force` (and a
# failure), so a hung pod neither blocks the run nor outlives it.
stop_pod() {
    kill -TERM $pod_pid 2>/dev/null
    i=0
    while kill -0 $pod_pid 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 $pod_pid 2>/dev/null; then
        kill -KILL $pod_pid
        wait $pod_pid
        fail "stop" "pea pod run ignored SIGTERM for 60 s"
        "$pea" --root $root pod rm --force "$1"
    fi
    wait $pod_pid
    pod_rc=$?
}

# gone NAME: the pod left no cgroup, state or data.
gone() {
    if [ -n "$(pod_cgroup "$1")" ] || [ -e "$root/pods/$1" ] || [ -e "$data/pods/$1" ]; then
        fail "pod $1 cleanup" "left: $(pod_cgroup "$1") $(ls -d $root/pods/$1 $data/pods/$1 2>/dev/null)"
    else pass "pod $1 left no cgroup, state or data"; fi
}

# The pod's cgroup is /pea/pod-<name>-<uid>: the uid keeps pods of one name under two state roots apart.
pod_cgroup() { ls -d /sys/fs/cgroup/pea/pod-"$1"-* 2>/dev/null | head -n 1; }
# cg POD[/CONTAINER] FILE
cg() { pod=${1%%/*}; cat "$(pod_cgroup "$pod")${1#"$pod"}/$2" 2>/dev/null; }

if ! "$here/../../examples/make-rootfs" "$rootfs" > /dev/null; then
    fail "rootfs" "examples/make-rootfs failed"
    echo "pod-limits: $passed passed, $failed failed"
    exit 1
fi

# 1. Pod-level and per-container limits. Each container prints its own cgroup as it sees it (cgroup namespace:
# its cgroup is the root), and the guest reads the same files under /pea/pod-limits.
view='echo view $(cat /proc/self/cgroup) $(cat /sys/fs/cgroup/memory.max) $(cat /sys/fs/cgroup/cpu.max) $(cat /sys/fs/cgroup/cpu.weight); exec sleep 60'
pod_manifest limits \
    "$(container big "$view" '{"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "100m"}}')" \
    "$(container small "$view" '{"limits": {"memory": "32Mi", "cpu": "250m"}, "requests": {"cpu": "100m"}}')"
weight=$(weight_for 100)
start_pod limits
if wait_for "$work/limits.out" "[big] view" && wait_for "$work/limits.out" "[small] view"; then
    pod_mem=$(cg limits memory.max)
    pod_cpu=$(cg limits cpu.max)
    if [ "$pod_mem" = 100663296 ] && [ "$pod_cpu" = "75000 100000" ]; then
        pass "pod cgroup: memory.max $pod_mem, cpu.max $pod_cpu (sum of the containers' limits)"
    else fail "pod cgroup" "memory.max=$pod_mem cpu.max=$pod_cpu"; fi
    for c in "big 67108864 50000" "small 33554432 25000"; do
        set -- $c
        host="$(cg limits/$1 memory.max) $(cg limits/$1 cpu.max) $(cg limits/$1 cpu.weight)"
        want="$2 $3 100000 $weight"
        inside=$(sed -n "s/^\[$1\] view //p" "$work/limits.out")
        if [ "$host" = "$want" ] && [ "$inside" = "0::/ $want" ]; then
            pass "container $1: memory.max $2, cpu.max $3 100000, cpu.weight $weight (guest and own view)"
        else fail "container $1" "want '$want'; guest /pea/pod-limits/$1: '$host'; inside: '$inside'"; fi
    done
else
    fail "pod limits" "the containers did not report; out: $(cat $work/limits.out) err: $(cat $work/limits.err)"
fi
stop_pod limits
gone limits

# 2. A container past its memory limit is OOM-killed (128 + SIGKILL), the other container keeps running.
# tail keeps the whole newline-less stream in memory; the pipeline's status is tail's, so sh exits 137.
pod_manifest oom \
    "$(container hog 'sleep 1; head -c 100m /dev/zero | tail' '{"limits": {"memory": "32Mi"}}')" \
    "$(container steady 'i=0; while :; do i=$((i + 1)); echo tick $i; sleep 0.2; done' '{"limits": {"memory": "32Mi"}}')"
start_pod oom
if wait_for "$work/oom.err" "hog: exited with code" 120; then
    ticks=$(grep -c '^\[steady\] tick' "$work/oom.out")
    sleep 1
    later=$(grep -c '^\[steady\] tick' "$work/oom.out")
    procs=$(cg oom/steady cgroup.procs | wc -l)
    ooms=$(cg oom memory.events | sed -n 's/^oom_kill //p')
    if grep -qF "hog: exited with code 137" "$work/oom.err" && [ "${ooms:-0}" -ge 1 ] && \
       [ "$later" -gt "$ticks" ] && [ "$procs" -ge 1 ] && ! grep -qF "steady: exited" "$work/oom.err"; then
        pass "hog OOM-killed (exit 137, pod oom_kill $ooms), steady still running ($ticks then $later ticks)"
    else
        fail "pod OOM" "oom_kill=$ooms ticks $ticks then $later, steady procs $procs; err: $(cat $work/oom.err)"
    fi
else
    fail "pod OOM" "hog never exited; out: $(tail -n 3 $work/oom.out) err: $(cat $work/oom.err)"
fi
stop_pod oom
gone oom

# 3. Pod-level resources (spec.resources) set the pod cgroup's limits instead of the containers' sum, pids included,
# and requests.cpu its cpu.weight.
cat > "$work/podlevel.json" <<JSON
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "podlevel"},
 "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
  "resources": {"limits": {"memory": "200Mi", "cpu": "1", "pids": "64"}, "requests": {"cpu": "500m"}},
  "containers": [$(container only 'echo started; exec sleep 60' '{"limits": {"memory": "100Mi", "cpu": "500m"}}')]}}
JSON
start_pod podlevel
if wait_for "$work/podlevel.out" "[only] started"; then
    got="$(cg podlevel memory.max) $(cg podlevel cpu.max) $(cg podlevel pids.max) $(cg podlevel cpu.weight)"
    want="209715200 100000 100000 64 $(weight_for 500)"
    if [ "$got" = "$want" ]; then pass "pod-level resources: pod cgroup memory.max, cpu.max, pids.max, cpu.weight $got"
    else fail "pod-level resources" "want '$want', got '$got'"; fi
else
    fail "pod-level resources" "the container did not start; err: $(cat $work/podlevel.err)"
fi
stop_pod podlevel
gone podlevel

# Nothing else of the pods either: no /pea/pod-* cgroup, no pod state or data, no mount under them.
left="$(ls -d /sys/fs/cgroup/pea/pod-* 2>/dev/null) $(ls -A $root/pods 2>/dev/null) $(ls -A $data/pods 2>/dev/null)"
mounts=$(grep -E " ($root|$data)" /proc/mounts)
if [ -z "$(echo $left)" ] && [ -z "$mounts" ]; then pass "no pod cgroup, state, data or mount remains"
else fail "pods cleanup" "left: $left mounts: $mounts"; fi

rm -rf "$work" "$root" "$data"
echo "pod-limits: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
