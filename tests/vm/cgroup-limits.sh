# cgroup v2 limits, run inside the VM (busybox sh) by tests/vm/run-vm-tests: every controller is available there.
# Usage: cgroup-limits.sh BUILD_DIR. Prints "cgroup-limits: N passed, N failed" last.
build=$1
pea="$build/runtime/pea"
root=/run/pea-vm
work=/tmp/pea-vm-bundles
passed=0
failed=0
mkdir -p "$work"

pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }

# make_bundle NAME RESOURCES_JSON ARGS_JSON: a busybox + peatest bundle with those resources and args.
make_bundle() {
    b=$work/$1
    mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
    cp /bin/busybox "$b/rootfs/bin/busybox"
    cp "$build/tests/peatest" "$b/rootfs/bin/peatest"
    for a in sh cat sleep echo; do ln -sf busybox "$b/rootfs/bin/$a"; done
    cat > "$b/config.json" <<JSON
{"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "hostname": "vm",
 "process": {"args": $3, "cwd": "/", "env": ["PATH=/bin"]},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}],
 "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
           "resources": $2}}
JSON
}

cg() { cat "/sys/fs/cgroup/pea/$1/$2" 2>/dev/null; }

# memory.max: a process allocating past the limit is OOM-killed, memory.events counts it and `events` reports it.
make_bundle mem '{"memory": {"limit": 33554432, "swap": 33554432}}' \
    '["sh", "-c", "sleep 1; peatest alloc 128; echo survived > /tmp/x; sleep 100"]'
"$pea" --root $root create --bundle "$work/mem" mem && "$pea" --root $root start mem
"$pea" --root $root events --interval 200ms mem > /tmp/mem-events 2>&1 &
events_pid=$!
for i in $(seq 50); do [ "$(cg mem memory.events | sed -n 's/^oom_kill //p')" -ge 1 ] 2>/dev/null && break; sleep 0.2; done
sleep 0.6
kill $events_pid 2>/dev/null
ooms=$(cg mem memory.events | sed -n 's/^oom_kill //p')
max=$(cg mem memory.max)
if [ "$max" = 33554432 ] && [ "${ooms:-0}" -ge 1 ] && grep -q '"type":"oom"' /tmp/mem-events; then
    pass "memory.max OOM-kills (oom_kill $ooms) and events reports it"
else fail "memory.max" "memory.max=$max oom_kill=$ooms events: $(grep -c oom /tmp/mem-events)"; fi
"$pea" --root $root delete --force mem

# pids.max stops a fork loop.
make_bundle pids '{"pids": {"limit": 10}}' '["peatest", "forkloop", "50"]'
out=$("$pea" --root $root run --bundle "$work/pids" pids)
forked=$(echo "$out" | sed -n 's/^forked //p')
if [ -n "$forked" ] && [ "$forked" -lt 10 ] && echo "$out" | grep -q EAGAIN; then pass "pids.max stops a fork loop ($forked)"
else fail "pids.max" "$out"; fi

# cpu.max throttles a busy loop.
make_bundle cpu '{"cpu": {"quota": 10000, "period": 100000}}' '["sh", "-c", "while :; do :; done"]'
"$pea" --root $root run --detach --bundle "$work/cpu" cpu
sleep 2
throttled=$(cg cpu cpu.stat | sed -n 's/^nr_throttled //p')
if [ "$(cg cpu cpu.max)" = "10000 100000" ] && [ "${throttled:-0}" -gt 0 ]; then pass "cpu.max throttles ($throttled)"
else fail "cpu.max" "cpu.max=$(cg cpu cpu.max) nr_throttled=$throttled"; fi
"$pea" --root $root delete --force cpu

# cpuset pins the container to one CPU; cpu.weight from shares.
make_bundle cpuset '{"cpu": {"cpus": "1", "shares": 1024}}' '["sh", "-c", "grep Cpus_allowed_list /proc/self/status"]'
out=$("$pea" --root $root run --bundle "$work/cpuset" cpuset)
case "$out" in *"Cpus_allowed_list:"*1) pass "cpuset pins to CPU 1" ;; *) fail "cpuset" "$out" ;; esac

# update changes memory.max of a running container; unified keys land.
make_bundle upd '{"memory": {"limit": 67108864}, "unified": {"memory.high": "60000000"}}' '["sleep", "100"]'
"$pea" --root $root run --detach --bundle "$work/upd" upd
high=$(cg upd memory.high)
"$pea" --root $root update --memory 48M upd
# The kernel rounds memory.high down to whole pages.
if [ "$(cg upd memory.max)" = 50331648 ] && [ "$high" = 59998208 ]; then
    pass "update sets memory.max; unified memory.high=$high"
else fail "update" "memory.max=$(cg upd memory.max) memory.high=$high"; fi
stats=$("$pea" --root $root events --stats upd)
case "$stats" in *'"memory":{"usage":{"usage":'*'"limit":50331648'*) pass "events --stats reports memory" ;;
*) fail "events" "$stats" ;; esac
"$pea" --root $root delete --force upd

# io.max throttles a block device (the VM's null disk) and io.weight lands.
dev=$(cat /sys/block/vda/dev 2>/dev/null)
major=${dev%:*}
minor=${dev#*:}
make_bundle io "{\"blockIO\": {\"throttleReadBpsDevice\": [{\"major\": $major, \"minor\": $minor, \"rate\": 1048576}]}}" \
    '["sleep", "100"]'
if [ -n "$dev" ] && "$pea" --root $root run --detach --bundle "$work/io" io; then
    case "$(cg io io.max)" in "$dev rbps=1048576 "*) pass "io.max throttles $dev" ;; *) fail "io.max" "$(cg io io.max)" ;; esac
    "$pea" --root $root delete --force io
else
    fail "io.max" "no block device in the VM, or create failed"
fi

# No internal processes: pea run from a cgroup that holds processes (a CI job) still places a limited container
# below it, by moving the job into a leaf first.
mkdir /sys/fs/cgroup/job
make_bundle job '{"memory": {"limit": 67108864}}' '["sh", "-c", "echo placed"]'
sed -i 's|"resources"|"cgroupsPath": "/job/c1", "resources"|' "$work/job/config.json"
out=$(sh -c 'echo $$ > /sys/fs/cgroup/job/cgroup.procs; exec "$0" --root "$1" run --bundle "$2" job' \
      "$pea" $root "$work/job" 2>&1)
# Once the last container there is gone, the job's processes go back and pea-leaf with them.
if [ "$out" = placed ] && [ "$(cat /sys/fs/cgroup/job/c1/memory.max 2>/dev/null || echo gone)" = gone ] && \
   [ ! -d /sys/fs/cgroup/job/pea-leaf ]; then
    pass "a limited container below a cgroup that held processes"
else fail "no internal processes" "$out / $(cat /sys/fs/cgroup/job/cgroup.subtree_control)"; fi
rmdir /sys/fs/cgroup/job/pea-leaf /sys/fs/cgroup/job 2>/dev/null

# Nothing is left behind.
if [ -e /sys/fs/cgroup/pea ] || [ -n "$(ls $root 2>/dev/null)" ]; then fail "cleanup" "$(ls /sys/fs/cgroup/pea $root 2>&1)"
else pass "every cgroup and state dir is gone"; fi

echo "cgroup-limits: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
