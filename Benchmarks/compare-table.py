#!/usr/bin/env python3
"""Reads the rounds Benchmarks/compare wrote to a folder and prints, per point, the median over
rounds of Tribes and Cohort and their ratio (Cohort / Tribes)."""
import csv, glob, os, statistics, sys

folder = sys.argv[1]
tribes, cohort = {}, {}
for path in sorted(glob.glob(os.path.join(folder, "tribes-*.csv"))):
    for row in csv.DictReader(open(path)):
        if row.get("kind") != "msg" or row.get("errors", "0") not in ("0", ""):
            continue
        mode = "acknowledged" if row["mode"] == "sync_ack" else row["mode"]
        key = (int(row["K"]), mode, int(row["size"]))
        tribes.setdefault(key, []).append(row)
for path in sorted(glob.glob(os.path.join(folder, "cohort-*.csv"))):
    for row in csv.DictReader(open(path)):
        mode = "acknowledged" if row["mode"] == "processed" else row["mode"]
        key = (int(row["k"]), mode, int(row["payload"]))
        cohort.setdefault(key, []).append(row)

def med(rows, field):
    values = [float(r[field]) for r in rows if r.get(field) not in (None, "", "-")]
    return statistics.median(values) if values else float("nan")

def size(n):
    return f"{n // 1024} KiB" if n >= 1024 else f"{n} B"

print("| K | mode | payload | Tribes msg/s per rcv | Cohort msg/s per rcv | ratio | Tribes p50 / p99 µs | Cohort p50 / p99 µs | p50 ratio | p99 ratio | Tribes / Cohort cpu-µs/msg | rounds |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in sorted(set(tribes) | set(cohort)):
    k, mode, n = key
    t, c = tribes.get(key, []), cohort.get(key, [])
    t_rate, c_rate = med(t, "msgs_per_s_per_receiver"), med(c, "msgs_per_rcv")
    rate_ratio = c_rate / t_rate if t and c and t_rate else float("nan")
    if mode == "acknowledged":
        t50, t99, c50, c99 = med(t, "p50_us"), med(t, "p99_us"), med(c, "p50_us"), med(c, "p99_us")
        lat = f"{t50:.0f} / {t99:.0f} | {c50:.0f} / {c99:.0f} | {c50 / t50:.2f}× | {c99 / t99:.2f}×" if t and c else "| | |"
    else:
        lat = "| | |"
    cpu = f"{med(t, 'cpu_us_per_msg'):.1f} / {med(c, 'cpu_us_per_msg'):.1f}"
    print(f"| {k} | {mode} | {size(n)} | {t_rate:,.0f} | {c_rate:,.0f} | {rate_ratio:.2f}× | {lat} | {cpu} | {min(len(t), len(c))} |")

# The HTTP cluster bench (Benchmarks/http-cluster), one results.csv per round.
http = {}
for path in sorted(glob.glob(os.path.join(folder, "http-*", "results.csv"))):
    for row in csv.DictReader(open(path)):
        http.setdefault(row["point"], []).append(row)
if http:
    single = med(http.get("single", []), "req_per_s")
    print()
    print("HTTP: GET /counter (every request writes its session), wrk 16 connections through nginx round-robin.")
    print("No Tomcat DeltaManager cluster ran (none is scripted yet), so there is no Cohort/Tomcat ratio here.")
    print()
    print("| point | req/s | p50 µs | p99 µs | Cohort CPU µs/req | nginx CPU µs/req | errors | cluster / one node | rounds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for point in ("cluster-sync", "cluster-async", "single"):
        rows = http.get(point, [])
        if not rows:
            continue
        rps = med(rows, "req_per_s")
        rel = f"{rps / single:.0%}" if single == single and single else ""
        errors = sum(int(r["errors"]) for r in rows)
        print(f"| {point} | {rps:,.0f} | {med(rows, 'p50_us'):.0f} | {med(rows, 'p99_us'):.0f} | "
              f"{med(rows, 'node_cpu_us_per_req'):.1f} | {med(rows, 'nginx_cpu_us_per_req'):.1f} | {errors} | {rel} | {len(rows)} |")
