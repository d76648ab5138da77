"""The benchmark suite: C2ST, training time, sampling time and peak memory per task x estimator x budget.

Same as ``sbi-gen benchmark`` (see ``sbi-gen benchmark --help``); defaults to the
sbibm-style tasks with exact reference posteriors (toy_gaussian, two_moons,
slcp), sbi-gen's three estimators, a budget of 10^4, 5 observations x 10,000
posterior samples, and sbi's NPE (MAF and NSF) on the same simulations when the
``sbi`` package is installed (``pip install -e ".[bench]"``); add sbi's FMPE and
NPSE with ``--sbi-methods``, more budgets with ``--budgets 1000,10000,100000``.

Usage:
    python benchmarks/run.py --out runs/bench              # about 30 minutes on 2 CPU cores (measured: 1 thread
                                                           # per cell, another job running)
    python benchmarks/run.py --quick --out runs/bench-quick   # smoke run, under 2 minutes
    python benchmarks/run.py --tasks two_moons,slcp,alkane,gw --budgets 10000 --out runs/bench-1e4
"""

from __future__ import annotations

import sys

from sbi_gen.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
