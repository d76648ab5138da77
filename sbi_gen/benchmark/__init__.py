"""Benchmark suite: posterior accuracy and cost per task, estimator and simulation budget.

For every task (a registered simulator with a reference posterior) x method x
budget the suite simulates the training set, trains, draws posterior samples
for a fixed set of observations and scores them by C2ST against the reference
posterior, recording training wall time, sampling time and peak memory. Each
such *cell* runs in its own Python process, so peak memory is the cell's own
and one crashing method cannot take the rest down.

Methods are sbi-gen estimator plugins (``flow``, ``diffusion``, ...) and, when
the ``sbi`` package is installed (``pip install sbi-gen[bench]``), sbi's own
estimators (``sbi:NPE-maf``, ``sbi:NPE-nsf``, ``sbi:NPSE``, ``sbi:FMPE``) trained
on the *same* simulations and scored on the *same* observations with the *same*
classifier, in the same run (:mod:`sbi_gen.benchmark.sbi_backend`).

Entry points: ``sbi-gen benchmark`` and ``benchmarks/run.py``; the API is
:func:`run_suite` with a :class:`SuiteConfig`.
"""

from sbi_gen.benchmark.suite import SBI_METHODS, SuiteConfig, run_suite

__all__ = ["SBI_METHODS", "SuiteConfig", "run_suite"]
