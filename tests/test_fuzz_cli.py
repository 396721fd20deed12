"""`vmstate fuzz`: exit codes, JSON, counterexamples that `vmstate check`
replays, several workers, and the example database shared through redis."""
from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from planted import PLANTED
from vmstate.fuzz import campaign as fuzz
from vmstate.cli import main


def _fuzz(*args):
    return CliRunner().invoke(main, ["fuzz", *args])


def test_a_clean_campaign_exits_zero_and_reports_its_numbers(tmp_path):
    result = _fuzz("--device", "pit", "--examples", "40", "--seed", "1", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["examples"] >= 40 and summary["failures"] == []
    assert summary["distinct_states"] > 3 and summary["examples_per_second"] > 0


@pytest.mark.parametrize("args", [["--device", "floppy"], ["--examples", "0"], ["--workers", "0"],
                                  ["--examples", "5", "--time", "1"],
                                  ["--database", "redis://127.0.0.1:1/0", "--examples", "1"]])
def test_bad_input_exits_two_without_a_traceback(tmp_path, args):
    result = _fuzz(*args, "--out", str(tmp_path), "--json")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_broken_schema_is_found_shrunk_and_replayable(tmp_path):
    """The sections= hook: a campaign against a planted bug writes a
    counterexample that `vmstate check` (on the real schemas) runs, and that
    the checker on the broken ones still fails."""
    from vmstate.check import checker

    bug = PLANTED["pcihost-config-reg-dropped"]
    config = fuzz.Config(devices=("piix4_pm",), examples=200, seed=0, out=tmp_path, database=":memory:",
                         sections=bug.sections, tag=bug.name)
    report = fuzz.campaign(config, progress=False)
    assert len(report.failures) == 1
    path = Path(report.failures[0].path)
    text = path.read_text()
    assert "PCIHost.config_reg" in report.failures[0].fields
    assert checker.check(text, sections=bug.sections).status == "diverges"
    replay = CliRunner().invoke(main, ["check", "--json", str(path)])
    assert replay.exit_code == 0 and json.loads(replay.output)["status"] == "equivalent"


def _plant(monkeypatch, name: str) -> None:
    """Every campaign the CLI starts runs against a planted bug's schemas."""
    real = fuzz.campaign
    monkeypatch.setattr(fuzz, "campaign", lambda config, **kw: real(
        dataclasses.replace(config, sections=PLANTED[name].sections, tag=name), **kw))


def test_a_found_failure_exits_one(tmp_path, monkeypatch):
    _plant(monkeypatch, "rtc-cmos-index-dropped")
    result = _fuzz("--device", "rtc", "--examples", "300", "--seed", "0", "--out", str(tmp_path), "--json")
    assert result.exit_code == 1, result.output
    failure = json.loads(result.output.strip().splitlines()[-1])["failures"][0]
    assert failure["fields"] == ["mc146818rtc.cmos_index"] and Path(failure["path"]).exists()


def _share_a_failure(tmp_path, monkeypatch, database: str) -> None:
    """Two workers find a planted bug and save it in ``database``; a second
    campaign of two examples replays it from there.  Unseeded: hypothesis
    keeps nothing from a seeded run.  (The bug shows within about 50
    examples; 400 leave no realistic chance of missing it.)"""
    _plant(monkeypatch, "pcihost-config-reg-dropped")
    first = _fuzz("--device", "pm", "--examples", "400", "--workers", "2", "--out",
                  str(tmp_path / "a"), "--database", database, "--json")
    assert first.exit_code == 1, first.output
    summary = json.loads(first.output.strip().splitlines()[-1])
    assert summary["workers"] == 2 and len(summary["failures"]) >= 1
    again = _fuzz("--device", "pm", "--examples", "2", "--out", str(tmp_path / "b"),
                  "--database", database, "--json")
    assert again.exit_code == 1, again.output


def test_two_workers_share_failures_through_a_directory_database(tmp_path, monkeypatch):
    _share_a_failure(tmp_path, monkeypatch, str(tmp_path / "db"))
    assert any((tmp_path / "db").iterdir())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (CI installs it: apt-get install -y redis-server)")
    pytest.importorskip("redis", reason="needs the redis extra: pip install -e '.[test,redis]' (CI installs it)")
    port = _free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not come up")
        yield f"redis://127.0.0.1:{port}/0", client
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_workers_share_failures_through_a_redis_database(tmp_path, redis_url, monkeypatch):
    url, client = redis_url
    _share_a_failure(tmp_path, monkeypatch, url)
    assert client.dbsize() > 0
