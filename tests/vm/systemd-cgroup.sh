# --systemd-cgroup with systemd as PID 1, run inside the VM (busybox sh) by tests/vm/run-vm-tests, which boots
# `run-in-vm --systemd` for it: the container's cgroup is a transient scope systemd makes. Then the same through
# podman --cgroup-manager systemd. Usage: systemd-cgroup.sh BUILD_DIR. Prints "systemd-cgroup: N passed, N failed" last.
build=$1
pea="$build/runtime/pea"
root=/run/pea-vm-systemd
work=/tmp/pea-vm-systemd
passed=0
failed=0
mkdir -p "$work"

pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }
prop() { systemctl show -P "$2" "$1" 2>/dev/null; }

# make_bundle NAME CGROUPS_PATH RESOURCES_JSON ARGS_JSON
make_bundle() {
    b=$work/$1
    mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
    cp /bin/busybox "$b/rootfs/bin/busybox"
    for a in sh cat sleep echo; do ln -sf busybox "$b/rootfs/bin/$a"; done
    cat > "$b/config.json" <<JSON
{"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "hostname": "vm",
 "process": {"args": $4, "cwd": "/", "env": ["PATH=/bin"]},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}],
 "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
           "cgroupsPath": "$2", "resources": $3}}
JSON
}

if [ "$(cat /proc/1/comm)" != systemd ]; then
    echo "systemd-cgroup: systemd is not PID 1 here"
    echo "systemd-cgroup: 0 passed, 1 failed"
    exit 1
fi

# A scope in a nested slice: pea-vm.slice lives under pea.slice, as systemd lays slices out.
unit=sd-c1.scope
cg=/sys/fs/cgroup/pea.slice/pea-vm.slice/$unit
make_bundle c1 "pea-vm.slice:sd:c1" '{"memory": {"limit": 33554432}, "pids": {"limit": 20}, "cpu": {"shares": 512}}' \
    '["sleep", "100"]'
if ! "$pea" --root $root --systemd-cgroup create --bundle "$work/c1" c1; then
    fail "create --systemd-cgroup" "create failed"
else
    pid=$("$pea" --root $root state c1 | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
    in_cgroup=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
    if [ "$(prop $unit ActiveState)" = active ] && [ "$(prop $unit Slice)" = pea-vm.slice ] &&
        [ "$(prop $unit Delegate)" = yes ] && [ "$(prop $unit ControlGroup)" = /pea.slice/pea-vm.slice/$unit ] &&
        [ "$in_cgroup" = /pea.slice/pea-vm.slice/$unit ]; then
        pass "the init ($pid) is in scope $unit (Slice=pea-vm.slice, Delegate=yes) at $in_cgroup"
    else
        fail "scope" "state=$(prop $unit ActiveState) slice=$(prop $unit Slice) delegate=$(prop $unit Delegate) cgroup=$(prop $unit ControlGroup) init in $in_cgroup"
    fi
    if [ "$(cat $cg/memory.max)" = 33554432 ] && [ "$(cat $cg/pids.max)" = 20 ] && [ "$(cat $cg/cpu.weight)" = 20 ] &&
        [ "$(prop $unit MemoryMax)" = 33554432 ] && [ "$(prop $unit TasksMax)" = 20 ]; then
        pass "memory.max, pids.max and cpu.weight applied, and systemd knows MemoryMax and TasksMax"
    else
        fail "resources" "memory.max=$(cat $cg/memory.max) pids.max=$(cat $cg/pids.max) cpu.weight=$(cat $cg/cpu.weight) MemoryMax=$(prop $unit MemoryMax) TasksMax=$(prop $unit TasksMax)"
    fi
    "$pea" --root $root start c1
    "$pea" --root $root update --memory 67108864 --pids-limit 30 c1
    if [ "$(cat $cg/memory.max)" = 67108864 ] && [ "$(prop $unit MemoryMax)" = 67108864 ] &&
        [ "$(cat $cg/pids.max)" = 30 ] && [ "$(prop $unit TasksMax)" = 30 ]; then
        pass "update writes the scope's files and systemd's properties"
    else
        fail "update" "memory.max=$(cat $cg/memory.max) MemoryMax=$(prop $unit MemoryMax) pids.max=$(cat $cg/pids.max) TasksMax=$(prop $unit TasksMax)"
    fi
    "$pea" --root $root update --memory 50331648 c1
    if [ "$(prop $unit MemoryMax)" = 50331648 ] && [ "$(cat $cg/pids.max)" = 30 ] && [ "$(prop $unit TasksMax)" = 30 ]; then
        pass "an update of the memory alone leaves the pids limit as it was"
    else
        fail "update memory alone" "MemoryMax=$(prop $unit MemoryMax) pids.max=$(cat $cg/pids.max) TasksMax=$(prop $unit TasksMax)"
    fi
    "$pea" --root $root pause c1
    paused=$("$pea" --root $root state c1 | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
    frozen=$(cat $cg/cgroup.freeze)
    "$pea" --root $root resume c1
    ps_pids=$("$pea" --root $root ps --format json c1)
    if [ "$paused" = paused ] && [ "$frozen" = 1 ] && [ "$(cat $cg/cgroup.freeze)" = 0 ] && [ "$ps_pids" = "[$pid]" ]; then
        pass "pause, resume and ps work on the scope's cgroup"
    else
        fail "pause/ps" "status=$paused freeze=$frozen ps=$ps_pids"
    fi
    "$pea" --root $root delete --force c1
    if [ "$(prop $unit LoadState)" = not-found ] && [ ! -d $cg ]; then
        pass "delete stops the unit and its cgroup goes"
    else
        fail "delete" "LoadState=$(prop $unit LoadState) cgroup there: $([ -d $cg ] && echo yes || echo no)"
    fi
fi

# No cgroupsPath: system.slice, pea-ID.scope (no cgroup namespace: the init sees its path); an init that exits empties the scope, and delete still succeeds.
make_bundle c2 "" '{}' '["sh", "-c", "cat /proc/self/cgroup"]'
out=$("$pea" --root $root --systemd-cgroup run --bundle "$work/c2" c2 2>&1)
rc=$?
if [ $rc = 0 ] && [ "$out" = "0::/system.slice/pea-c2.scope" ] && [ "$(prop pea-c2.scope LoadState)" = not-found ] &&
    [ ! -d /sys/fs/cgroup/system.slice/pea-c2.scope ]; then
    pass "an empty cgroupsPath gives system.slice/pea-ID.scope, gone after run"
else
    fail "default scope" "rc=$rc out=$out LoadState=$(prop pea-c2.scope LoadState)"
fi

# The unit exists already: a clear error, and nothing of the second container stays.
make_bundle c3 "system.slice:sd:dup" '{}' '["sleep", "100"]'
"$pea" --root $root --systemd-cgroup create --bundle "$work/c3" c3
# (Into a file: a container created would hold a pipe open for as long as it runs.)
"$pea" --root $root --systemd-cgroup create --bundle "$work/c3" c4 >/dev/null 2>$work/c4-err
err=$(cat $work/c4-err)
if echo "$err" | grep -q "start sd-dup.scope in system.slice: the unit already exists" &&
    ! "$pea" --root $root state c4 >/dev/null 2>&1 && [ "$(prop sd-dup.scope ActiveState)" = active ]; then
    pass "a second container for an existing unit fails clearly and leaves the first alone"
else
    fail "unit exists" "$err"
fi
"$pea" --root $root delete --force c3
"$pea" --root $root delete --force c4 2>/dev/null

# podman --cgroup-manager systemd with pea as its runtime: podman passes --systemd-cgroup and
# machine.slice:libpod:ID.
p=/tmp/pea-vm-podman
mkdir -p $p/root $p/runroot $p/tmp
podman="podman --root $p/root --runroot $p/runroot --tmpdir $p/tmp --storage-driver vfs --events-backend file --cgroup-manager systemd --runtime $pea"
tar -C "$work/c1/rootfs" -c . | $podman import - localhost/pea-vm:latest >/dev/null 2>$p/import-err
id=$($podman run -d --network none --pids-limit 0 localhost/pea-vm:latest sleep 100 2>$p/run-err)
punit=libpod-$id.scope
if [ -n "$id" ] && [ "$(prop $punit ActiveState)" = active ] && [ "$(prop $punit Slice)" = machine.slice ] &&
    [ "$(prop $punit Delegate)" = yes ]; then
    pass "podman --cgroup-manager systemd: the container runs in $punit (machine.slice, Delegate=yes)"
else
    fail "podman run" "id=$id state=$(prop $punit ActiveState) import: $(cat $p/import-err) run: $(cat $p/run-err)"
fi
$podman rm -f -t 0 "$id" >/dev/null 2>$p/rm-err
if [ -n "$id" ] && [ "$(prop $punit LoadState)" = not-found ] && [ ! -d /sys/fs/cgroup/machine.slice/$punit ]; then
    pass "podman rm -f: the unit and its cgroup are gone"
else
    fail "podman rm" "LoadState=$(prop $punit LoadState) rm: $(cat $p/rm-err)"
fi

leftover=$(systemctl list-units --all --no-legend 'sd-*.scope' 'pea-*.scope' 'libpod-*.scope' 2>/dev/null)
if [ -z "$leftover" ]; then pass "no scope is left"; else fail "leftovers" "$leftover"; fi

echo "systemd-cgroup: $passed passed, $failed failed"
[ $failed -eq 0 ]
