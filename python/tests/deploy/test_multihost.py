"""Several hosts: a scheduler, two workers and a client as four hosts in network namespaces of
their own (``ip netns``, veth pairs, addresses in 10.213.K.0/24 and 10.214.K.0/24), run as root.

    LAN (a bridge in a namespace of its own):
      A 10.213.K.2  scheduler    --interface eth0
      B 10.213.K.3  worker "b"   --interface eth0
      C 10.213.K.4  worker "c"   listens on 127.0.0.1:9000 only; a port forward on C's
                                 10.213.K.4:9100 reaches it: --contact-address tcp://10.213.K.4:9100
      root namespace 10.213.K.1  the tunnel's far end: socat 10.214.K.1:P → 10.213.K.2:8786
    client link:
      D 10.214.K.2  the client; default route to the root namespace, but its firewall drops
                    everything to the LAN: it reaches only the tunnel (the SSH -L case).

The client still gets every result: it tries the workers' data ports, gives up after
``distributed.comm.timeouts.connect`` and has the scheduler fetch them (or, with
``direct_to_workers=False``, goes through the scheduler from the start). Needs root, ``ip``,
``iptables`` and ``socat`` (installed by .ci/setup-containers.sh); without them the tests fail,
they never skip. Everything made is removed afterwards, also on failure."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

PID = os.getpid()
K = PID % 250 + 1
NS = {role: f"oxd{PID}-{role}" for role in ("lan", "a", "b", "c", "d")}
LAN = f"10.213.{K}"
LINK = f"10.214.{K}"
TUNNEL_PORT = 18786
ROOT_LAN_IF = f"oxd{PID}g"[:15]
ROOT_D_IF = f"oxd{PID}d"[:15]


def _sh(*cmd, check=True):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}: {p.stderr}")
    return p.stdout


def _in(ns, *cmd, **kw):
    return _sh("ip", "netns", "exec", NS[ns], *cmd, **kw)


def _wait_listening(ns, host, port, what, procs):
    """Polls until something in `ns` accepts on host:port (a process of `procs` exiting
    first fails the test with its output)."""
    deadline = time.monotonic() + 60
    while True:
        probe = subprocess.run(
            ["ip", "netns", "exec", NS[ns], sys.executable, "-c",
             f"import socket; socket.create_connection(('{host}', {port}), timeout=1).close()"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args} exited {p.returncode} before {what} listened")
        assert time.monotonic() < deadline, f"{what} is not listening on {host}:{port}"
        time.sleep(0.2)


def _teardown(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for ns in NS.values():
        # Anything left inside (a nanny's worker process), by pid.
        for pid in _sh("ip", "netns", "pids", ns, check=False).split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        _sh("ip", "netns", "del", ns, check=False)
    for link in (ROOT_LAN_IF, ROOT_D_IF):
        _sh("ip", "link", "del", link, check=False)


@pytest.fixture(scope="module")
def hosts():
    """Makes the namespaces and links, starts the tunnel, the scheduler and the workers;
    yields the tunnel's address and the processes; removes everything afterwards."""
    missing = [t for t in ("ip", "iptables", "socat") if shutil.which(t) is None]
    if missing or os.geteuid() != 0:
        pytest.fail(
            f"multi-host tests need root and {', '.join(missing) or 'ip, iptables, socat'}: "
            "run .ci/setup-containers.sh (Debian packages iproute2, iptables, socat) as root"
        )
    procs = []
    logs = {}
    try:
        for ns in NS.values():
            _sh("ip", "netns", "add", ns)
        for ns in NS:
            _in(ns, "ip", "link", "set", "lo", "up")
        _in("lan", "ip", "link", "add", "br0", "type", "bridge")
        _in("lan", "ip", "link", "set", "br0", "up")
        for role, last in (("a", 2), ("b", 3), ("c", 4)):
            _sh("ip", "-n", NS["lan"], "link", "add", f"v{role}", "type", "veth",
                "peer", "name", "eth0", "netns", NS[role])
            _in("lan", "ip", "link", "set", f"v{role}", "master", "br0", "up")
            _in(role, "ip", "addr", "add", f"{LAN}.{last}/24", "dev", "eth0")
            _in(role, "ip", "link", "set", "eth0", "up")
        # The root namespace on the LAN (where the tunnel ends).
        _sh("ip", "link", "add", ROOT_LAN_IF, "type", "veth", "peer", "name", "vg", "netns", NS["lan"])
        _in("lan", "ip", "link", "set", "vg", "master", "br0", "up")
        _sh("ip", "addr", "add", f"{LAN}.1/24", "dev", ROOT_LAN_IF)
        _sh("ip", "link", "set", ROOT_LAN_IF, "up")
        # The client's host: a link to the root namespace, a default route through it, and a
        # firewall that drops whatever it sends to the LAN (packets vanish, as to a private
        # address seen from a laptop).
        _sh("ip", "link", "add", ROOT_D_IF, "type", "veth", "peer", "name", "eth0", "netns", NS["d"])
        _sh("ip", "addr", "add", f"{LINK}.1/24", "dev", ROOT_D_IF)
        _sh("ip", "link", "set", ROOT_D_IF, "up")
        _in("d", "ip", "addr", "add", f"{LINK}.2/24", "dev", "eth0")
        _in("d", "ip", "link", "set", "eth0", "up")
        _in("d", "ip", "route", "add", "default", "via", f"{LINK}.1")
        _in("d", "iptables", "-A", "OUTPUT", "-d", f"{LAN}.0/24", "-j", "DROP")

        def start(name, ns, *cmd):
            log = open(f"/tmp/oxidask-multihost-{PID}-{name}.log", "w+")
            logs[name] = log
            argv = ["ip", "netns", "exec", NS[ns], *cmd] if ns else list(cmd)
            p = subprocess.Popen([str(c) for c in argv], stdout=log, stderr=subprocess.STDOUT)
            procs.append(p)
            return p

        py = sys.executable
        start("scheduler", "a", py, "-m", "oxidask", "scheduler", "--interface", "eth0",
              "--port", "8786", "--no-dashboard",
              "--contact-address", f"tcp://{LINK}.1:{TUNNEL_PORT}")
        _wait_listening("a", f"{LAN}.2", 8786, "the scheduler", procs)
        start("tunnel", None, "socat", f"TCP-LISTEN:{TUNNEL_PORT},bind={LINK}.1,reuseaddr,fork",
              f"TCP:{LAN}.2:8786")
        _wait_listening("d", f"{LINK}.1", TUNNEL_PORT, "the tunnel", procs)
        scheduler = f"tcp://{LAN}.2:8786"
        start("worker-b", "b", py, "-m", "oxidask", "worker", scheduler, "--name", "b",
              "--interface", "eth0", "--nthreads", "1", "--no-dashboard")
        # C's data port is on its loopback only; the port forward makes it reachable.
        start("forward-c", "c", "socat", f"TCP-LISTEN:9100,bind={LAN}.4,reuseaddr,fork",
              "TCP:127.0.0.1:9000")
        start("worker-c", "c", py, "-m", "oxidask", "worker", scheduler, "--name", "c",
              "--listen-address", "tcp://127.0.0.1:9000",
              "--contact-address", f"tcp://{LAN}.4:9100", "--nthreads", "1", "--no-dashboard")
        yield f"tcp://{LINK}.1:{TUNNEL_PORT}", logs
    finally:
        _teardown(procs)
        for log in logs.values():
            log.seek(0)
            sys.stderr.write(log.read()[-3000:])
            log.close()
            os.unlink(log.name)


CLIENT = textwrap.dedent(
    """
    import json, socket, sys
    from oxidask.distributed import Client, wait

    address, direct = sys.argv[1], json.loads(sys.argv[2])
    with Client(address, direct_to_workers=direct, timeout=60) as c:
        c.wait_for_workers(2, timeout=60)
        workers = {w["name"]: a for a, w in c.scheduler_info()["workers"].items()}
        # This host really cannot open a connection to a worker.
        host, port = workers["b"].split("//")[-1].rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            reachable = True
        except OSError:
            reachable = False
        squares = c.map(lambda x: x * x + 1, range(200))
        total = c.submit(sum, squares)
        # Data moves between the workers both ways, C reached through its contact address.
        on_b = c.submit(lambda: list(range(1000)), workers=["b"], pure=False)
        on_c = c.submit(lambda xs: sum(xs), on_b, workers=["c"])
        seven = c.submit(lambda: 7, workers=["c"], pure=False)
        times_six = c.submit(lambda x: x * 6, seven, workers=["b"])
        placed = [on_b, on_c, seven, times_six]
        wait(placed)
        who = c.who_has(placed)
        ran = [sorted(who[f.key]) for f in placed]
        print(json.dumps({
            "workers": workers,
            "reachable": reachable,
            "total": total.result(),
            "squares": c.gather(squares),
            "pair": c.gather([on_c, times_six]),
            "list": on_b.result(),
            "ran": ran,
        }))
    """
)


@pytest.mark.parametrize("direct", [None, False], ids=["direct-then-scheduler", "through-scheduler"])
def test_client_behind_a_tunnel_gets_results_from_workers_on_other_hosts(hosts, direct):
    tunnel, logs = hosts
    env = dict(os.environ, OXIDASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="3s")
    p = subprocess.run(
        ["ip", "netns", "exec", NS["d"], sys.executable, "-c", CLIENT, tunnel, json.dumps(direct)],
        capture_output=True, text=True, env=env, timeout=240,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["workers"] == {"b": f"tcp://{LAN}.3:" + out["workers"]["b"].rsplit(":", 1)[1],
                              "c": f"tcp://{LAN}.4:9100"}
    assert out["reachable"] is False
    assert out["total"] == sum(x * x + 1 for x in range(200))
    assert out["squares"] == [x * x + 1 for x in range(200)]
    assert out["pair"] == [sum(range(1000)), 42]
    assert out["list"] == list(range(1000))
    b, c = out["workers"]["b"], out["workers"]["c"]
    on_b, on_c, seven, times_six = out["ran"]
    assert b in on_b and c in on_c and c in seven and b in times_six, out["ran"]


def test_hosts_report_their_interface_and_contact_addresses(hosts):
    _, logs = hosts
    logs["scheduler"].seek(0)
    text = logs["scheduler"].read()
    assert f"listening at tcp://{LAN}.2:8786" in text, text
    assert f"contact address tcp://{LINK}.1:{TUNNEL_PORT}" in text, text
    logs["worker-c"].seek(0)
    assert f"serving data at {LAN}.4:9100" in logs["worker-c"].read()
