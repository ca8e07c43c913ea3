"""Every nstcam process runs OpenMP with passive waits unless the user chose otherwise (#21: the
spinning threads collapsed the frame rate beside a busy core)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = ("import os, sys; from nstcam.cli import main; main(['--version']); "
         "print('policy', os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")


@pytest.mark.slow
@pytest.mark.parametrize("given, expected", [
    ({}, "PASSIVE None"),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE None"),
    ({"GOMP_SPINCOUNT": "10000"}, "None 10000"),  # a bounded spin chosen by the user: no policy added
])
def test_the_cli_sets_passive_waits_before_torch_loads(given, expected) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    run = subprocess.run([sys.executable, "-c", CHECK], env={**env, **given}, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"policy {expected} False" in run.stdout  # set while torch was not yet loaded


def test_too_late_once_torch_is_loaded(monkeypatch) -> None:
    import torch  # noqa: F401

    from nstcam.host.omp import prefer_passive_waits

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert prefer_passive_waits() is False and "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize("given, expected", [
    ({}, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "ACTIVE"}),
    ({"GOMP_SPINCOUNT": "1000"}, {"GOMP_SPINCOUNT": "1000"}),
])
def test_a_child_environment_gets_passive_waits_unless_the_user_chose(given, expected) -> None:
    from nstcam.host.omp import add_passive_waits

    env = {"PATH": "/bin", **given}
    assert add_passive_waits(env) is (given == {})
    assert env == {"PATH": "/bin", **expected}
