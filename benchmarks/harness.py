"""Runs our side and the reference side of a benchmark suite alternately (A B A B …),
checks that they agree, and prints one JSON object per case:

  {"suite", "case", "ours_s", "reference", "reference_s", "ratio", "check", ...}

ratio = reference_s / ours_s (higher is better for us); times are medians over the runs.
Each run is a fresh process; the timed region is measured inside it.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# suite -> [(case, full size, quick size, reference name, reference script)]
SUITES = {
    "tasks": [
        ("independent", 1_000_000, 10_000, "dask-threaded", "tasks.py"),
        ("chain", 1_000_000, 10_000, "dask-threaded", "tasks.py"),
        ("tree", 1_000_000, 10_000, "dask-threaded", "tasks.py"),
        # Dask's delayed merges one graph per handle: 100k handles took 20 minutes here.
        ("delayed-independent", 20_000, 2_000, "dask-delayed-threaded", "tasks.py"),
    ],
}


def run_json(cmd, timeout):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("suite", choices=sorted(SUITES))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ours", required=True, help="path of the oxidask-bench binary")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--case", action="append", help="only these cases")
    p.add_argument("--timeout", type=int, default=1800)
    a = p.parse_args()
    reps = a.reps or 3
    for case, full_n, quick_n, ref_name, script in SUITES[a.suite]:
        if a.case and case not in a.case:
            continue
        n = quick_n if a.quick else full_n
        ours_cmd = [a.ours, a.suite, case, "--n", str(n)]
        ref_cmd = [a.python, os.path.join(HERE, "reference", script), case, "--n", str(n)]
        ours, ref = [], []
        for _ in range(reps):
            ours.append(run_json(ours_cmd, a.timeout))
            ref.append(run_json(ref_cmd, a.timeout))
        ours_s = statistics.median(r["seconds"] for r in ours)
        ref_s = statistics.median(r["seconds"] for r in ref)
        checks_ours = {json.dumps(r["check"]) for r in ours}
        checks_ref = {json.dumps(r["check"]) for r in ref}
        if len(checks_ours) == 1 and checks_ours == checks_ref:
            check = "ok"
        else:
            check = f"MISMATCH ours={sorted(checks_ours)} reference={sorted(checks_ref)}"
        print(
            json.dumps(
                {
                    "suite": a.suite,
                    "case": case,
                    "n": n,
                    "ours_s": round(ours_s, 6),
                    "reference": ref_name,
                    "reference_s": round(ref_s, 6),
                    "ratio": round(ref_s / ours_s, 2) if ours_s > 0 else None,
                    "check": check,
                    "ours_per_s": round(n / ours_s) if ours_s > 0 else None,
                    "reps": reps,
                    "date": datetime.date.today().isoformat(),
                }
            ),
            flush=True,
        )
        if check != "ok":
            sys.exit(1)


if __name__ == "__main__":
    main()
