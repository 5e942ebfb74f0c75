"""What the benchmarks' Python parts share: requesters run as threads at
once, and the row each signer's results print as."""
import threading
import time


def in_threads(n, fn):
    """fn(0) .. fn(n - 1), each in a thread of its own, all at once; the
    seconds until the last one returned."""
    threads = [threading.Thread(target=fn, args=(w,)) for w in range(n)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.monotonic() - t


def row(name, lat, ok, secs):
    """The results line: name, requests, successes, per second, p50 and
    p99 of the latencies (ms; lat is sorted here)."""
    lat.sort()
    print("%-22s %6d %6d %9.1f %8.3f %8.3f" % (name, len(lat), ok, len(lat) / secs,
          lat[len(lat) // 2], lat[int(len(lat) * 0.99)]))
