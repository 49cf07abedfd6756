"""CPU by thread and durable writes, for the benchmark scripts (Tests/Benchmarks/lib.sh wraps these).

  procstat.py snap PID [METRICS_URL]        JSON: CPU ticks per thread name of PID (utime + stime of each
                                            /proc/PID/task/*/stat, summed by comm), the machine's busy and idle
                                            ticks, and, with a URL, the daemon's loa_store_rows_written_total and
                                            loa_store_transactions_total (bearer token from LOA_API_TOKEN)
  procstat.py run CMD...                    runs CMD, prints its stdout's last line and its CPU seconds (rusage of
                                            the child, user + system) as JSON
  procstat.py per BEFORE AFTER COUNT        JSON: microseconds of CPU per message (COUNT messages) by thread name,
                                            "all" summed, rows and transactions per message, cores busy
"""
import json, os, sys, urllib.request

HZ = os.sysconf("SC_CLK_TCK")


def ticks(path):
    f = open(path).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime (fields 14 and 15): kernel work on the thread's behalf included


def threads(pid):
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{t}/comm").read().strip()
            out[name] = out.get(name, 0) + ticks(f"/proc/{pid}/task/{t}/stat")
        except OSError:
            pass  # a thread that ended between the listing and the read
    return out


def machine():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(v) - v[3] - v[4], v[3] + v[4]  # busy, idle (+ iowait)


def metrics(url):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ.get("LOA_API_TOKEN", "")})
    out = {}
    for line in urllib.request.urlopen(req, timeout=10).read().decode().splitlines():
        for key in ("loa_store_rows_written_total", "loa_store_transactions_total"):
            if line.startswith(key + " "):
                out[key] = int(float(line.split()[1]))
    return out


def main():
    what = sys.argv[1]
    if what == "snap":
        busy, idle = machine()
        snap = {"threads": threads(sys.argv[2]), "busy": busy, "idle": idle}
        if len(sys.argv) > 3:
            snap["metrics"] = metrics(sys.argv[3])
        print(json.dumps(snap))
    elif what == "run":
        import resource, subprocess
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(sys.argv[2:], capture_output=True, text=True, check=True).stdout.strip().splitlines()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(json.dumps({"out": out[-1] if out else "", "cpu": cpu}))
    elif what == "per":
        b, a, n = json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
        per = {t: (a["threads"][t] - b["threads"].get(t, 0)) / HZ / n * 1e6 for t in a["threads"]}
        per = {t: v for t, v in per.items() if v > 0}
        out = {"threads": per, "all": sum(per.values())}
        total = (a["busy"] + a["idle"]) - (b["busy"] + b["idle"])
        out["cores"] = (a["busy"] - b["busy"]) / total * os.cpu_count() if total else 0
        if "metrics" in a and "metrics" in b:
            for key, name in (("loa_store_rows_written_total", "rows"), ("loa_store_transactions_total", "transactions")):
                if key in a["metrics"] and key in b["metrics"]:
                    out[name] = (a["metrics"][key] - b["metrics"][key]) / n
        print(json.dumps(out))


if __name__ == "__main__":
    main()
