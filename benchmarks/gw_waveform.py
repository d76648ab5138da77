"""GW benchmark: batched TaylorF2 waveforms per second against LALSimulation, in one run.

Draws 10,000 parameter sets from the ``gw`` prior and times

- LALSimulation's ``SimInspiralChooseFDWaveform(TaylorF2, f_min=20, f_max=0, f_ref=0,
  df=1/8)`` called once per parameter set (it computes the bins from 20 Hz to
  f_ISCO, which lies below 256 Hz across the prior: the same non-zero bins);
- our :class:`~sbi_gen_simulators.gw_waveform.TaylorF2` on the 20-256 Hz grid
  (1,889 bins, complex128 ``[10000, 1889]``), batched, with 1 and 2 worker
  threads, writing into a fresh output and into a reused buffer;
- the full ``gw`` simulator (whitened waveform plus noise, float32 out).

Rounds are interleaved and the best of ``--repeats`` is kept for each, so a
busy machine slows both sides alike. Prints rates and the ratio to LAL.

Usage: python benchmarks/gw_waveform.py [--n 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import sbi_gen
from sbi_gen_simulators.gw_waveform import TaylorF2, component_masses, isco_frequency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="parameter sets")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        import lal
        import lalsimulation
    except ImportError:
        lal = lalsimulation = None

    simulator = sbi_gen.get_simulator("gw")
    theta = simulator.prior.sample(args.n, torch.Generator().manual_seed(0)).double()
    f = simulator.frequencies
    assert float(isco_frequency(theta[:, 0], theta[:, 1]).max()) < float(f[-1]), "f_ISCO beyond the grid"
    m1, m2 = (m.tolist() for m in component_masses(theta[:, 0], theta[:, 1]))
    distance = (theta[:, 2] * 1e6).tolist()

    def run_lal() -> None:
        for i in range(args.n):
            lalsimulation.SimInspiralChooseFDWaveform(
                m1[i] * lal.MSUN_SI, m2[i] * lal.MSUN_SI, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, distance[i] * lal.PC_SI,
                0.0, 0.0, 0.0, 0.0, 0.0, float(f[1] - f[0]), float(f[0]), 0.0, 0.0, None, lalsimulation.TaylorF2,
            )

    buffer = torch.empty(args.n, f.numel(), dtype=torch.complex128)
    single, double = TaylorF2(f, workers=1), TaylorF2(f, workers=2)
    cases = {
        "sbi-gen TaylorF2, 1 thread, fresh output": lambda: single(theta),
        "sbi-gen TaylorF2, 1 thread, reused buffer": lambda: single(theta, out=buffer),
        "sbi-gen TaylorF2, 2 threads, fresh output": lambda: double(theta),
        "sbi-gen TaylorF2, 2 threads, reused buffer": lambda: double(theta, out=buffer),
        "gw simulator (whitened + noise, float32), 1 thread": lambda: simulator.simulate(
            theta, torch.Generator().manual_seed(1)),
    }
    if lal is not None:
        cases = {"LALSimulation ChooseFDWaveform, one at a time": run_lal, **cases}
    single(theta[:100])
    best = dict.fromkeys(cases, 0.0)
    for _ in range(args.repeats):
        for name, function in cases.items():
            start = time.perf_counter()
            function()
            best[name] = max(best[name], args.n / (time.perf_counter() - start))

    print(f"{args.n} parameter sets from the gw prior; grid {float(f[0]):g}-{float(f[-1]):g} Hz, "
          f"df = {float(f[1] - f[0]):g} Hz, {f.numel()} bins; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; best of {args.repeats}")
    reference = best.get("LALSimulation ChooseFDWaveform, one at a time")
    if lal is None:
        print("lalsuite is not installed: no LALSimulation baseline")
    for name, rate in best.items():
        ratio = f"  {rate / reference:5.1f}x LAL" if reference else ""
        print(f"  {name:<52s} {rate:>10,.0f} waveforms/s{ratio}")


if __name__ == "__main__":
    main()
