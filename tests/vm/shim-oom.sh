# containerd-shim-pea-v2's /tasks/oom event, run inside the VM by tests/vm/run-vm-tests (the host's unified
# hierarchy has no memory controller). Usage: shim-oom.sh BUILD_DIR. Prints "shim-oom: N passed, N failed" last.
here=$(cd "$(dirname "$0")" && pwd)
/usr/bin/python3 "$here/shim_oom.py" "$1" 2>&1 || echo "shim-oom: 0 passed, 1 failed"
