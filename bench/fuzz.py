"""Fuzzing throughput: examples per second of ``vmstate fuzz`` with one
worker and with two, run one after the other on the same machine.

Wall time is what matters here (workers are processes), so run it on an
otherwise idle machine; the ratio of the two rows says how well the workers
scale, the absolute numbers how many scenarios a campaign checks.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile


def campaign(workers: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", "from vmstate.cli import main; main()", "fuzz", "--time", str(seconds),
                               "--workers", str(workers), "--out", out, "--json"],
                              capture_output=True, text=True)
        if done.returncode not in (0, 1):
            raise SystemExit(done.stderr)
        return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each campaign")
    args = parser.parse_args()
    rows = {k: campaign(k, args.seconds) for k in (1, 2)}
    for workers, result in rows.items():
        print(f"--workers {workers}: {result['examples_per_second']:8.1f} examples/s "
              f"({result['examples']} examples, {result['distinct_states']} distinct states)")
    print(f"scaling 2 vs 1: {rows[2]['examples_per_second'] / rows[1]['examples_per_second']:.2f}x")


if __name__ == "__main__":
    main()
