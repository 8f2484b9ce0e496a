"""Startup benchmark: wall time of ``ctid --help`` and of ``ctid serve`` until ``/readyz`` answers 200
(a fresh SQLite database, so the first start includes creating the schema, and a second start
on the same database), each repeated ``--repeat`` times; median and best are printed.

    python bench/startup.py --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ctid_exe, database, free_port, machine, start_ctid, workdir  # noqa: E402

HELP_TARGET = 0.300


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def line(name: str, samples: list[float], target: float | None = None) -> str:
    text = (f"  {name:34} median {statistics.median(samples) * 1000:6.0f} ms, best {min(samples) * 1000:6.0f} ms "
            f"({len(samples)} runs)")
    if target is not None:
        text += f"  target <= {target * 1000:.0f} ms: {'met' if statistics.median(samples) <= target else 'MISSED'}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--agents", type=int, default=50, help="agents (and API keys) in the served config")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    timed([*ctid_exe(), "--help"])  # warm the page cache and bytecode
    print(line("ctid --help", [timed([*ctid_exe(), "--help"]) for _ in range(args.repeat)], HELP_TARGET))
    print(line("python -c pass (interpreter floor)", [timed([sys.executable, "-c", "pass"]) for _ in range(args.repeat)]))
    fresh, again = [], []
    for _ in range(args.repeat):
        work = workdir()
        with database("sqlite", work) as db_url:
            for samples in (fresh, again):
                server = start_ctid(work, port=free_port(), agents=args.agents, db_url=db_url)
                samples.append(time.perf_counter() - server.started)
                server.stop()
    print(line("ctid serve to ready (new database)", fresh))
    print(line("ctid serve to ready (existing db)", again))


if __name__ == "__main__":
    main()
