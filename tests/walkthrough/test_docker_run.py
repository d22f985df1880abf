"""scripts/docker-run.sh, driven with a fake ``docker`` on PATH that records its argv and plays ps/start/run.

The fake answers ``docker ps -a --filter name=REGEX`` the way Docker does (a regular-expression search over
``/NAME`` for each container named in FAKE_DOCKER_CONTAINERS), exits FAKE_DOCKER_PS_RC for ps and FAKE_DOCKER_RC
for anything else, and records each call with its PID and parent PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.walkthrough.tools import DOCKER_RUN, require

FAKE_DOCKER = """#!{python}
import json, os, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "pid": os.getpid(), "ppid": os.getppid()}}) + "\\n")
if args[:1] == ["ps"]:
    pattern = None
    for i, arg in enumerate(args[:-1]):
        if arg == "--filter" and args[i + 1].startswith("name="):
            pattern = args[i + 1][len("name="):]
    for name in filter(None, os.environ.get("FAKE_DOCKER_CONTAINERS", "").split(",")):
        if pattern is None or re.search(pattern, "/" + name):
            print(name)
    sys.exit(int(os.environ.get("FAKE_DOCKER_PS_RC", "0")))
sys.exit(int(os.environ.get("FAKE_DOCKER_RC", "0")))
"""


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]
    pid: int

    @property
    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls]


@pytest.fixture
def docker_run(tmp_path: Path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "docker"
    fake.write_text(FAKE_DOCKER.format(python=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "docker.log"

    def run(*args: str, containers: str = "", rc: int = 0, ps_rc: int = 0, path: str | None = None) -> Run:
        log.write_text("")
        env = {
            "PATH": path if path is not None else f"{bindir}:/usr/bin:/bin",
            "FAKE_DOCKER_LOG": str(log),
            "FAKE_DOCKER_CONTAINERS": containers,
            "FAKE_DOCKER_RC": str(rc),
            "FAKE_DOCKER_PS_RC": str(ps_rc),
        }
        proc = subprocess.Popen(["/bin/bash", str(DOCKER_RUN), *args], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=30)
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        return Run(proc.returncode, out, err, calls, proc.pid)

    return run


def test_new_container_is_created_with_docker_run_in_the_foreground(docker_run) -> None:
    r = docker_run("--name", "mongo-ins", "-p", "27017:27017", "mongo")
    assert r.rc == 0, r.stderr
    assert r.argvs == [
        ["ps", "-a", "--filter", "name=^/mongo-ins$", "--format", "{{.Names}}"],
        ["run", "--name", "mongo-ins", "-p", "27017:27017", "mongo"],
    ]
    assert "-d" not in r.argvs[1] and "--detach" not in r.argvs[1]


def test_existing_container_is_started_attached(docker_run) -> None:
    r = docker_run("--name", "mongo-ins", "-p", "27017:27017", "mongo", containers="other,mongo-ins")
    assert r.rc == 0, r.stderr
    assert r.argvs[1:] == [["start", "-a", "mongo-ins"]]


@pytest.mark.parametrize("containers", ["mongo-ins-old", "old-mongo-ins", "mongo-ins2,xmongo-ins"])
def test_similar_names_do_not_count_as_existing(docker_run, containers: str) -> None:
    r = docker_run("--name", "mongo-ins", "mongo", containers=containers)
    assert r.rc == 0, r.stderr
    assert r.argvs[1:] == [["run", "--name", "mongo-ins", "mongo"]]


def test_dots_in_the_name_are_matched_literally(docker_run) -> None:
    r = docker_run("--name", "db.1", "mongo", containers="dbx1")
    assert r.argvs[0][3] == "name=^/db\\.1$"
    assert r.argvs[1:] == [["run", "--name", "db.1", "mongo"]]
    r = docker_run("--name", "db.1", "mongo", containers="dbx1,db.1")
    assert r.argvs[1:] == [["start", "-a", "db.1"]]


def test_name_equals_form(docker_run) -> None:
    r = docker_run("--name=node-app", "-p", "3000:3000", "employees")
    assert r.argvs == [
        ["ps", "-a", "--filter", "name=^/node-app$", "--format", "{{.Names}}"],
        ["run", "--name=node-app", "-p", "3000:3000", "employees"],
    ]
    r = docker_run("-p", "3000:3000", "--name=node-app", "employees", containers="node-app")
    assert r.argvs[1:] == [["start", "-a", "node-app"]]


def test_name_anywhere_before_the_image_and_first_one_wins(docker_run) -> None:
    r = docker_run("-p", "1:1", "--name", "first", "img", "--name", "second")
    assert r.argvs[0][3] == "name=^/first$"
    assert r.argvs[1] == ["run", "-p", "1:1", "--name", "first", "img", "--name", "second"]


def test_arguments_with_spaces_and_quotes_survive(docker_run) -> None:
    args = ["--name", "web", "-e", "GREETING=hello  world", "-l", "note=it's \"quoted\"", "busybox",
            "sh", "-c", 'echo "$GREETING" * ; exit 3', ""]
    r = docker_run(*args)
    assert r.rc == 0, r.stderr
    assert r.argvs[1] == ["run", *args]


@pytest.mark.parametrize("args", [(), ("mongo",), ("-p", "1:1", "mongo"), ("--name",), ("--name=", "mongo"),
                                  ("--name", "", "mongo")])
def test_missing_name_is_a_usage_error(docker_run, args: tuple[str, ...]) -> None:
    r = docker_run(*args)
    assert r.rc == 2
    assert r.stderr.startswith("usage: docker-run.sh --name NAME")
    assert r.stdout == ""
    assert r.calls == []


@pytest.mark.parametrize("name", ["-x", "a b", "a/b", "_x", "x;rm"])
def test_invalid_name_is_refused_before_docker_runs(docker_run, name: str) -> None:
    r = docker_run("--name", name, "mongo")
    assert r.rc == 2
    assert "invalid container name" in r.stderr
    assert r.calls == []


def test_help(docker_run) -> None:
    r = docker_run("--help")
    assert r.rc == 0
    assert r.stdout.startswith("usage: docker-run.sh --name NAME")
    assert r.calls == []


@pytest.mark.parametrize(("containers", "verb"), [("", "run"), ("mongo-ins", "start")])
def test_docker_exit_code_is_passed_through(docker_run, containers: str, verb: str) -> None:
    r = docker_run("--name", "mongo-ins", "mongo", containers=containers, rc=125)
    assert r.rc == 125
    assert r.argvs[-1][0] == verb


def test_docker_ps_failure_stops_before_run(docker_run) -> None:
    r = docker_run("--name", "mongo-ins", "mongo", ps_rc=1)
    assert r.rc == 1
    assert "'docker ps' failed" in r.stderr
    assert [a[0] for a in r.argvs] == ["ps"]


def test_docker_missing_is_an_error(docker_run, tmp_path: Path) -> None:
    r = docker_run("--name", "mongo-ins", "mongo", path=str(tmp_path / "nowhere"))
    assert r.rc == 127
    assert r.calls == []


@pytest.mark.parametrize("containers", ["", "mongo-ins"])
def test_docker_replaces_the_script_process(docker_run, containers: str) -> None:
    """exec: the unit's main PID is docker itself, so systemd's stop signal and exit status reach it directly."""
    r = docker_run("--name", "mongo-ins", "mongo", containers=containers)
    assert [c["argv"][0] for c in r.calls] == ["ps", "start" if containers else "run"]
    assert r.calls[-1]["pid"] == r.pid


def test_script_shape() -> None:
    text = DOCKER_RUN.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert "sudo" not in text.replace("# - No sudo", "")
    assert os.access(DOCKER_RUN, os.X_OK)


def test_shellcheck() -> None:
    shellcheck = require("shellcheck", "shellcheck")
    proc = subprocess.run([shellcheck, "--shell=bash", str(DOCKER_RUN)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
