# `run` of /bin/true by several OCI runtimes, inside the VM harness (busybox sh; tests/bench/vm.py starts it through
# tests/vm/run-in-vm). Usage: vm-run.sh CONFIG_JSON RUNS NAME=BINARY...
# Builds the busybox bundle (CONFIG_JSON is benchlib's config.json) in the guest's tmpfs, then times RUNS rounds, after
# 3 warm-up rounds, of `BINARY --root ROOT run --bundle BUNDLE ID` (create + start + wait + delete), one per runtime
# per round, the order rotating each round; then the same rounds of `BINARY --version` (starting the binary alone).
# Prints, each line prefixed "vm-bench: ": facts ("kernel", "cpus", "controllers", "version NAME ..."), "clock NS"
# (two clock reads back to back), "sample NAME NS" per timed run, "version-sample NAME NS" per `--version`,
# "error NAME ..." for a run that failed, "left NAME IDS" and "cgroups-left N" for what the runtimes left behind.
# The clock is CLOCK_MONOTONIC's "now at N nsecs" from /proc/timer_list, read by the shell's own `read`: no fork, so
# a sample is the runtime's process from fork to exit plus one clock read ("clock").
config=$1
runs=$2
shift 2
work=/tmp/pea-bench-vm
b=$work/bundle
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
cp /bin/busybox "$b/rootfs/bin/busybox"
for a in true sh sleep cat head yes dd; do ln -s busybox "$b/rootfs/bin/$a"; done
cp "$config" "$b/config.json"

now() { { read -r x; read -r x; read -r x x t x; } < /proc/timer_list; }

echo "vm-bench: kernel $(uname -r)"
echo "vm-bench: cpus $(nproc)"
echo "vm-bench: controllers $(cat /sys/fs/cgroup/cgroup.controllers)"
for spec in "$@"; do echo "vm-bench: version ${spec%%=*} $("${spec#*=}" --version 2>&1 | head -n 1)"; done
now
t0=$t
now
echo "vm-bench: clock $((t - t0))"
cgroups_before=$(find /sys/fs/cgroup -type d | wc -l)

i=0
while [ $i -lt $((runs + 3)) ]; do
    for spec in "$@"; do
        name=${spec%%=*}
        bin=${spec#*=}
        now
        t0=$t
        "$bin" --root "$work/root-$name" run --bundle "$b" "r$i" < /dev/null > /dev/null 2> "$work/err"
        rc=$?
        now
        if [ $rc -ne 0 ]; then
            echo "vm-bench: error $name run r$i: exit $rc: $(head -c 300 "$work/err" | tr '\n' ' ')"
        elif [ $i -ge 3 ]; then
            echo "vm-bench: sample $name $((t - t0))"
        fi
    done
    first=$1
    shift
    set -- "$@" "$first"
    i=$((i + 1))
done

# What starting the binary alone costs (loader, libraries over 9p): `BINARY --version`, the same rounds.
i=0
while [ $i -lt $((runs + 3)) ]; do
    for spec in "$@"; do
        now
        t0=$t
        "${spec#*=}" --version < /dev/null > /dev/null 2>&1
        now
        [ $i -ge 3 ] && echo "vm-bench: version-sample ${spec%%=*} $((t - t0))"
    done
    i=$((i + 1))
done

for spec in "$@"; do
    name=${spec%%=*}
    bin=${spec#*=}
    left=$("$bin" --root "$work/root-$name" list -q 2>/dev/null | tr '\n' ' ')
    if [ -n "$left" ]; then
        echo "vm-bench: left $name $left"
        for id in $left; do "$bin" --root "$work/root-$name" delete --force "$id" > /dev/null 2>&1; done
    fi
done
echo "vm-bench: cgroups-left $(($(find /sys/fs/cgroup -type d | wc -l) - cgroups_before))"
rm -rf "$work"
