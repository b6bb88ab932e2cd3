"""make dashboard: optuna-dashboard on a study's storage, reachable on 127.0.0.1 only, listing the
study's trials, in a real headless browser where Chromium is installed."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """make dashboard on a study of one finished and one pruned trial; its address."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('study')}/study.db"
    study = optuna.create_study(study_name="convnets", storage=storage, direction="maximize")
    study.tell(study.ask(), 0.9)
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    port = free_port()
    server = subprocess.Popen(
        # -o install: the test runs in the installed environment, whatever its files' dates
        [
            "make",
            "-s",
            "-o",
            "install",
            "dashboard",
            f"STORAGE={storage}",
            f"DASHBOARD_PORT={port}",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # make and the dashboard end together below
    )
    address = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{address}/api/studies")
        yield address
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_the_dashboard_serves_the_study_on_this_machine_only(dashboard):
    port = int(dashboard.rsplit(":", 1)[1])
    with urllib.request.urlopen(f"{dashboard}/api/studies/1?after=0", timeout=10) as answer:
        trials = json.load(answer)["trials"]
    assert [(t["number"], t["state"]) for t in trials] == [(0, "Complete"), (1, "Pruned")]
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else (no 0.0.0.0, ::)


def listening_addresses(port: int) -> set[str]:
    """The addresses that sockets listen on at port, as the kernel's tables write them (IPv4's
    bytes reversed: 127.0.0.1 is 0100007F)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                addresses.add(address)
    return addresses


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no Chromium here")
def test_a_headless_browser_lists_the_studys_trials(dashboard):
    browser = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--virtual-time-budget=15000", "--dump-dom",
         f"{dashboard}/dashboard/studies/1/trials"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    page = browser.stdout
    assert "Trial 0" in page and "Trial 1" in page, page[-2000:]
    assert "Complete" in page and "Pruned" in page
