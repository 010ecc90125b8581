"""Ctrl-C in a blocking call on a cluster returns at once and cancels what it waited for."""

import signal
import subprocess
import sys
import textwrap
import time

SCRIPT = textwrap.dedent(
    """
    import time
    from oxidask.distributed import Client

    def slow(x):
        time.sleep(60)
        return x

    if __name__ == "__main__":
        with Client(n_workers=1, threads_per_worker=1) as client:
            f = client.submit(slow, 1)
            print("waiting", flush=True)
            start = time.monotonic()
            try:
                f.result()
            except KeyboardInterrupt:
                print("interrupted after", round(time.monotonic() - start, 1), flush=True)
                print("status", f.status, flush=True)
    """
)


def test_ctrl_c_in_result_returns_and_cancels_the_future(tmp_path):
    script = tmp_path / "wait.py"
    script.write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "waiting"
    # "waiting" is printed just before result() is called: a signal sent at once can land
    # before it (in print itself), outside the try.
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    lines = out.strip().splitlines()
    assert lines[0].startswith("interrupted after"), out
    assert lines[1] == "status cancelled", out
    assert p.returncode == 0
