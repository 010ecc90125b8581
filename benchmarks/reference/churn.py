"""The churn case of the distributed suite: a ~2n-task tree reduction and a 2n/5-task map on
2 worker processes of one thread, clean (`--mode clean`) or with a worker SIGKILLed and a fresh
one started every 3 s (`--mode churn`, `--every-ms` to change it).

Runs the churn test binary (crates/oxidask-cli/tests/churn.rs, built by cargo in release mode
unless OXIDASK_CHURN_PROFILE=dev; OXIDASK_CHURN_BIN names a built binary instead) in its
benchmark mode and prints one JSON line for benchmarks/harness.py:

  {"seconds", "check", "tasks", "kills", "task_runs", "redone"}

check is the tree's sum and the map's sum of squares, which the binary has already checked
exactly (it fails otherwise).

Example:
  python3 benchmarks/reference/churn.py churn --n 2000 --mode churn
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def churn_binary():
    """Path of the churn test binary, built if needed.

    Example: churn_binary() -> '.../release/deps/churn-0123abcd'
    """
    if os.environ.get("OXIDASK_CHURN_BIN"):
        return os.environ["OXIDASK_CHURN_BIN"]
    profile = os.environ.get("OXIDASK_CHURN_PROFILE", "release")
    cmd = ["cargo", "test", "--profile", profile, "--quiet", "-p", "oxidask-cli",
           "--test", "churn", "--no-run", "--message-format=json"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr.strip()}")
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "churn" \
                and msg.get("executable"):
            return msg["executable"]
    raise SystemExit("cargo built no churn test binary (is crates/oxidask-cli/tests/churn.rs there?)")


def main():
    """Runs one side of the churn case and prints its JSON line.

    Example: main()  # with sys.argv = ['churn.py', 'churn', '--n', '2000', '--mode', 'clean']
    """
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=["churn"])
    p.add_argument("--n", type=int, required=True, help="leaves of the tree")
    p.add_argument("--mode", choices=["clean", "churn"], required=True)
    p.add_argument("--every-ms", type=int, default=3000, help="a worker killed this often")
    a = p.parse_args()
    if a.n < 1:
        raise SystemExit(f"--n {a.n}: give at least one leaf")
    env = dict(os.environ,
               OXIDASK_CHURN_BENCH="1",
               OXIDASK_CHURN_MODE=a.mode,
               OXIDASK_CHURN_LEAVES=str(a.n),
               OXIDASK_CHURN_MAP=str(max(1, 2 * a.n // 5)),
               OXIDASK_CHURN_EVERY_MS=str(a.every_ms))
    out = subprocess.run([churn_binary()], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"the churn binary failed ({out.returncode})")
    runs = [json.loads(line.split(" ", 1)[1]) for line in out.stdout.splitlines()
            if line.startswith("churn-bench ")]
    if len(runs) != 1:
        raise SystemExit(f"expected one churn-bench line, got:\n{out.stdout}")
    r = runs[0]
    print(json.dumps({
        "seconds": r["seconds"],
        "check": [r["tree_sum"], r["map_sum"]],
        "tasks": r["tasks"],
        "kills": r["kills"],
        "task_runs": r["task_runs"],
        "redone": r["task_runs"] - r["tasks"],
    }))


if __name__ == "__main__":
    main()
