"""`python -m bench` with tiny numbers: every path runs end to end and the JSON has the documented shape."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

from harness.databases import PG_ADMIN_URL
from tests.conftest import DB_KINDS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MESSAGES = 20
FIGURES = ("accept_per_s", "e2e_per_s", "accept_p99_ms", "e2e_p95_ms", "paced_e2e_p95_ms", "cpu_ms_per_message",
           "rss_total_bytes")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    """One tiny bench run shared by the tests of this module (a run takes tens of seconds)."""
    out = str(tmp_path_factory.mktemp("bench-results"))
    argv = [sys.executable, "-m", "bench", "--messages", str(MESSAGES), "--latency-messages", "10",
            "--concurrency", "4", "--sizes", "4k", "--paced-seconds", "1", "--idle", "50", "--workers", "1",
            "--smtp-processes", "2", "--recipients", "3", "--db", ",".join(DB_KINDS), "--drain-timeout", "60", "--soak", "2", "--soak-rate", "5",
            "--out", out]
    env = {**os.environ, "MAILFERRY_BENCH_PG": PG_ADMIN_URL}
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=280, env=env)
    files = glob.glob(os.path.join(out, "*.json"))
    assert len(files) == 1, done.stdout + done.stderr
    with open(files[0], encoding="utf-8") as f:
        return done, json.load(f)


def done_stdout(bench_run) -> str:
    return bench_run[0].stdout


def test_bench_runs_every_path_and_writes_the_json(bench_run):
    done, result = bench_run

    assert done.returncode == 0, done.stdout + done.stderr
    assert result["errors"] == []
    assert result["machine"]["cores"] == os.cpu_count()
    assert f"on {os.cpu_count()} cores" in done.stdout
    # the Postfix baseline needs root to start a private instance; without it the run says so and goes on
    postfix = ["postfix"] if os.geteuid() == 0 else []
    assert len(result["skipped"]) == 1 - len(postfix)
    expected_paths = (["loopback", *postfix] + [f"mailferry-{db}" for db in DB_KINDS]
                      + [f"mailferry-{DB_KINDS[0]}+auth+rspamd"])
    assert [run["path"] for run in result["runs"]] == expected_paths
    for run in result["runs"]:
        assert run["size"] == 4096 and run["concurrency"] == 4
        assert run["throughput"]["arrived"] == MESSAGES and run["throughput"]["complete"], run
        assert run["throughput"]["accept_per_s"] > 0 and run["throughput"]["e2e_per_s"] > 0
        assert run["latency"]["accepted"] == 10 and run["latency"]["arrived"] == 10, run["latency"]
        for figure in ("accept_latency_ms", "e2e_latency_ms"):
            assert set(run["latency"][figure]) == {"p50", "p95", "p99", "max"}
            assert 0 < run["latency"][figure]["p50"] <= run["latency"][figure]["p99"]
        assert run["paced"]["offered_per_s"] > 0 and run["paced"]["arrived"] == run["paced"]["accepted"]
        if run["path"] != "loopback":
            assert set(run["ratios"]["vs_loopback"]) == set(FIGURES)
            assert run["ratios"]["vs_loopback"]["e2e_per_s"] > 0


def test_bench_reports_mailferry_memory_and_targets(bench_run):
    _, result = bench_run

    mailferry = [run for run in result["runs"] if run["path"].startswith("mailferry")]
    for run in mailferry:
        assert set(run["ratios"]) == ({"vs_loopback", "vs_postfix"} if os.geteuid() == 0 else {"vs_loopback"})
        labels = {label.split(":", 1)[0] for label in run["rss_bytes"]}
        assert {"smtp", "worker0", "redis"} <= labels
        assert all(rss > 0 for rss in run["rss_bytes"].values())
        assert run["throughput"]["cpu_ms_per_message"] > 0
        assert {"smtp", "worker0", "redis"} <= set(run["throughput"]["cpu_ms_per_message_by_process"])
        assert run["latency"]["stages"]["states"] == {"delivered": 10}
    auth = result["authentication"]
    assert auth["on"]["path"] == f"mailferry-{DB_KINDS[0]}+auth+rspamd" and auth["off"]["path"] == f"mailferry-{DB_KINDS[0]}"
    for side in ("on", "off"):
        assert auth[side]["accept_per_s"] > 0 and auth[side]["accept_p99_ms"] > 0
    assert auth["on"]["rspamd_cpu_ms_per_message"] > 0 and auth["off"]["rspamd_cpu_ms_per_message"] is None
    assert "authentication + rspamd (4K)" in done_stdout(bench_run)
    assert result["idle"]["connections"] == 50 and result["idle"]["after_bytes"] > 0
    assert "per_connection_bytes" in result["idle"]
    soak = result["soak"]
    assert soak["accepted"] == 10 and soak["failed"] == 0
    assert len(soak["rss_samples"]) >= 2 and soak["rss_max_bytes"] >= soak["rss_start_bytes"] > 0
    targets = {(t["run"], t["target"]) for t in result["targets"]}
    assert ("mailferry-sqlite" if "sqlite" in DB_KINDS else "mailferry-postgresql", "e2e msg/s") in targets
    assert all(isinstance(t["met"], bool) for t in result["targets"])
