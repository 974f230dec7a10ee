"""OCI CLI timings, the same commands for pea and runc: run, exec, the create/start/delete split, and state/list
with many containers present. Every function leaves no container behind (its own cleanup, and the caller's
Runtime.delete_all on the way out)."""
import time

from benchlib import median_ms, quiet, timed, timed_checked, wait_until, write_config


def bench_run(rt, bundle, runs):
    write_config(bundle, ["/bin/true"])
    return median_ms([timed(rt.argv("run", "--bundle", bundle, f"r{i}")) for i in range(runs)])


def bench_exec(rt, bundle, runs):
    write_config(bundle, ["sleep", "1000"])
    timed_checked(rt.argv("run", "--detach", "--bundle", bundle, "ex"))
    try:
        return median_ms([timed(rt.argv("exec", "ex", "true")) for _ in range(runs)])
    finally:
        rt.force_delete("ex")


def bench_split(rt, bundle, runs):
    """create, start and delete of /bin/true timed apart; delete after the process has exited (stopped)."""
    write_config(bundle, ["/bin/true"])
    create, start, delete = [], [], []
    for i in range(runs):
        cid = f"s{i}"
        try:
            create.append(timed_checked(rt.argv("create", "--bundle", bundle, cid)))
            start.append(timed_checked(rt.argv("start", cid)))
            if not wait_until(lambda: rt.status(cid) == "stopped", 10):
                raise RuntimeError(f"{rt.name}: {cid} did not stop")
            delete.append(timed_checked(rt.argv("delete", cid)))
        except BaseException:
            rt.force_delete(cid)
            raise
    return {"create": median_ms(create), "start": median_ms(start), "delete": median_ms(delete)}


def bench_many(rt, bundle, count, runs):
    """`count` created containers (each init blocked before exec, waiting for start), then `state ID` and `list`
    medians, then the time to delete them all (per container)."""
    write_config(bundle, ["/bin/true"])
    ids = [f"m{i}" for i in range(count)]
    made = []
    try:
        t0 = time.perf_counter()
        for cid in ids:
            timed_checked(rt.argv("create", "--bundle", bundle, cid))
            made.append(cid)
        create_each = (time.perf_counter() - t0) / count * 1000
        probe = ids[count // 2]
        state = median_ms([timed(rt.argv("state", probe)) for _ in range(runs)])
        lst = median_ms([timed(rt.argv("list")) for _ in range(max(5, runs // 4))])
        t0 = time.perf_counter()
        while made:
            quiet(rt.argv("delete", "--force", made[-1]))
            made.pop()
        delete_each = (time.perf_counter() - t0) / count * 1000
    finally:
        for cid in made:
            rt.force_delete(cid)
    return {"state": state, "list": lst, "create_each": create_each, "delete_each": delete_each, "count": count}


def bench_floor(runs):
    return median_ms([timed(["unshare", "--pid", "--net", "--ipc", "--uts", "--mount", "--fork", "/bin/true"])
                      for _ in range(runs)])
