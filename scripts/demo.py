"""``make demo``: bring up a local 3-node lab (real systemd per node, fleetpyd in each, one etcd), start the
example units with the ``fleetpy`` CLI exactly as a user would, and show where they run.

The lab is torn down at the end unless ``KEEP=1`` is set (then ``fleetpy lab down --name demo`` removes it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LAB = "demo"
UNITS = ["hello.service", "web@1.service", "web@2.service", "web@3.service", "global-monitor.service",
         "db-only.service", "demo-mongo.service", "demo-employees.service", "demo-mongo-discovery.service"]


def run(argv: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    print(f"$ {' '.join(argv)}", flush=True)
    proc = subprocess.run(argv, env=env, text=True, cwd=ROOT, capture_output=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: command failed with exit {proc.returncode}: {' '.join(argv)}")
    return proc


def lab_env() -> dict[str, str]:
    out = subprocess.run([str(BIN / "fleetpy"), "lab", "env", "--name", LAB], text=True, capture_output=True,
                         check=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip("'\"")
    return env


def lab_ip(env: dict[str, str], node: str) -> str:
    """node1's address (``<subnet>.11``): the lab numbers nodes from .11, on the etcd endpoint's subnet."""
    host = env["FLEETCTL_ENDPOINT"].split("//", 1)[1].split(":", 1)[0]
    return host.rsplit(".", 1)[0] + f".{10 + int(node.removeprefix('node'))}"


def wait_for(env: dict[str, str], argv: list[str], predicate: object, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = subprocess.run(argv, env=env, text=True, capture_output=True, cwd=ROOT).stdout
        if callable(predicate) and predicate(out):
            return out
        time.sleep(0.5)
    return out


def main() -> int:
    if os.geteuid() != 0:
        print("demo: the lab needs root (namespaces, cgroups, a bridge): run `sudo make demo`", file=sys.stderr)
        return 1
    fleetpy = str(BIN / "fleetpy")
    run([fleetpy, "lab", "down", "--name", LAB], check=False)
    run([fleetpy, "lab", "up", "--name", LAB, "--nodes", "3", "--metadata", "node1:role=db",
         "--metadata", "node2:role=web", "--metadata", "node3:role=web"])
    try:
        env = lab_env()
        wait_for(env, [fleetpy, "list-machines", "--no-legend"], lambda out: len(out.splitlines()) >= 3, 30)
        run([fleetpy, "list-machines"], env)
        run([fleetpy, "submit", "units/web@.service"], env)
        run([fleetpy, "start", "--block-attempts", "10", *[f"units/{u}" for u in UNITS if "@" not in u],
             *[u for u in UNITS if "@" in u]], env, check=False)
        wait_for(env, [fleetpy, "list-units", "--no-legend"],
                 lambda out: sum(" active" in line for line in out.splitlines()) >= 9, 30)
        run([fleetpy, "list-units"], env)
        print("\n# a fourth web instance conflicts with the three running ones: it waits, and says why", flush=True)
        run([fleetpy, "start", "--no-block", "web@4.service"], env)
        wait_for(env, [fleetpy, "list-unit-files", "--no-legend", "--fields", "unit,reason"],
                 lambda out: any(line.startswith("web@4") and "conflict" in line for line in out.splitlines()), 15)
        run([fleetpy, "list-unit-files", "--fields", "unit,hash,dstate,state,target,reason"], env)
        run([fleetpy, "explain", "web@4.service"], env, check=False)
        print("\n# power off node1: its units move, the Mongo stand-in and its app together", flush=True)
        run([fleetpy, "lab", "node", "--name", LAB, "poweroff", "node1"])
        wait_for(env, [fleetpy, "list-units", "--no-legend"],
                 lambda out: "/" + lab_ip(env, "node1") not in out
                 and sum(line.startswith("demo-") and " active" in line for line in out.splitlines()) == 3, 30)
        run([fleetpy, "list-units"], env)
        print("\n# db-only.service needs role=db, which only node1 had: it waits, with its reason", flush=True)
        run([fleetpy, "list-unit-files", "--fields", "unit,dstate,state,target,reason"], env)
        if os.environ.get("KEEP") == "1":
            print(f"\nThe lab keeps running. Talk to it with: eval \"$({fleetpy} lab env --name {LAB})\"")
            print(f"Remove it with: {fleetpy} lab down --name {LAB}")
            return 0
    finally:
        if os.environ.get("KEEP") != "1":
            run([fleetpy, "lab", "down", "--name", LAB], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
