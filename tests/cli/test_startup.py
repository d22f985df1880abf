"""The CLI's start-up imports only what every command needs (each heavy library is imported by its own path).

No timing here (timings live in bench/: ``fleetpy --version``); what is checked is which modules a bare start-up
loads, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

from fleetpy.cli import lab as cli_lab
from fleetpy.lab import state

HEAVY = ("etcd", "urllib3", "dns", "paramiko", "http.client", "fleetpy.lab.lab", "fleetpy.registry.etcd")


def _loaded_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out))


def test_bare_start_up_does_not_import_client_libraries() -> None:
    loaded = _loaded_after("import fleetpy.cli.main")
    assert not {m for m in HEAVY if m in loaded}


def test_the_etcd_driver_imports_python_etcd_when_it_connects() -> None:
    code = ("from fleetpy.client.config import ClientConfig\nfrom fleetpy.client.connect import connect\n"
            "connect(ClientConfig(endpoint='http://127.0.0.1:1')).close()")
    assert "etcd" in _loaded_after(code)


def test_lab_default_name_matches_the_lab_package() -> None:
    assert cli_lab.DEFAULT_NAME == state.DEFAULT_NAME


def test_dnspython_and_invoke_are_left_out_until_used() -> None:
    code = ("import fleetpy.registry.etcd, fleetpy.ssh.client, sys\n"
            "assert type(sys.modules['dns.resolver']).__name__ == '_OnFirstUse'\n"
            "assert 'invoke' not in sys.modules\n"
            "import etcd.client, paramiko.config\n"
            "assert etcd.client.dns.resolver.Resolver.__module__ == 'dns.resolver'\n"  # SRV discovery still works
            "assert paramiko.config.invoke is None\n")
    loaded = _loaded_after(code)
    assert "dns.resolver" in loaded
