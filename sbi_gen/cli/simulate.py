"""``sbi-gen simulate``: (theta, x) pairs into an HDF5 simulation store or an ``.npz`` file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sbi_gen.cli.common import add_seed_argument, check_writable_folder, parse_options, positive_int
from sbi_gen.errors import DataError, UntrustworthyResultError
from sbi_gen.simulation import DEFAULT_CHUNK_SIZE

__all__ = ["add_parser", "command"]

DEFAULT_NUM = 10_000


def add_parser(commands) -> None:
    sim = commands.add_parser(
        "simulate",
        help="draw (theta, x) pairs from a simulator into an HDF5 store (.h5) or an .npz file",
        description="Simulate pairs. An .h5 output is a simulation store written chunk by chunk: an interrupted "
        "run keeps every finished chunk and --resume completes it; chunks run in this process, on a local Dask "
        "cluster (--workers N) or on an existing Dask scheduler (--scheduler ADDRESS), with the same pairs "
        "whatever runs them. An .npz output is simulated in memory, chunk by chunk in the same way (so the same "
        "seed and chunk size give the same pairs as an .h5 store), and written at the end. While a run writes "
        "its output, a second run on the same path is refused.",
    )
    sim.add_argument("simulator", nargs="?", help="registered simulator name (see `sbi-gen plugins`)")
    sim.add_argument("-n", "--simulations", type=positive_int, help=f"number of pairs (default: {DEFAULT_NUM})")
    sim.add_argument("-o", "--out", required=True, help="output .h5 store or .npz file (new, unless --resume)")
    add_seed_argument(sim, default=None)
    sim.add_argument("--signals", action="store_true",
                     help="store the simulator's signals (the expensive, deterministic part) instead of x; "
                     "`sbi-gen train --data` then re-draws the noise and cheap parameters for every batch")
    sim.add_argument("--option", action="append", metavar="KEY=VALUE", help="simulator option, repeatable")
    sim.add_argument("--chunk-size", type=positive_int,
                     help=f"pairs per chunk, each chunk with its own random stream (default: {DEFAULT_CHUNK_SIZE}); "
                     "the same seed and chunk size give the same pairs in .h5 and .npz")
    store = sim.add_argument_group("simulation store (.h5 output)")
    store.add_argument("--resume", action="store_true", help="simulate the missing chunks of an existing store")
    store.add_argument("--workers", type=positive_int, help="run chunks on a local Dask cluster of N worker processes")
    store.add_argument("--scheduler", metavar="ADDRESS", help="run chunks on an existing Dask scheduler")
    finite = store.add_mutually_exclusive_group()
    finite.add_argument("--drop-non-finite", dest="non_finite", action="store_const", const="drop",
                        help="rows with NaN or inf are counted and never read back (the default)")
    finite.add_argument("--keep-non-finite", dest="non_finite", action="store_const", const="keep",
                        help="rows with NaN or inf are counted and read back (training then needs --drop-invalid)")
    store.add_argument("--sync-write", action="store_true",
                       help="write each chunk in the simulating thread: a killed process then loses at most one "
                       "chunk (default: chunks are written on a background thread while the next is simulated, "
                       "so kill -9 can lose two; Ctrl-C and simulator errors finish the write either way)")
    store.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def command(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix in (".h5", ".hdf5"):
        return _simulate_store(args, out)
    if out.suffix != ".npz":
        raise DataError(f"-o/--out: simulations are written to an .h5 store or an .npz file, got {out.name!r}")
    store_only = {"--resume": args.resume, "--workers": args.workers, "--scheduler": args.scheduler,
                  "--sync-write": args.sync_write, "--keep-non-finite/--drop-non-finite": args.non_finite}
    given = [flag for flag, value in store_only.items() if value]
    if given:
        raise DataError(f"{', '.join(given)} need(s) an HDF5 store: give an .h5 --out")
    if args.simulator is None:
        raise DataError("name the simulator to run (see `sbi-gen plugins`)")
    return _simulate_npz(args, out)


def _simulate_npz(args: argparse.Namespace, out: Path) -> int:
    from sbi_gen.data import save_simulations
    from sbi_gen.locking import exclusive_output
    from sbi_gen.registry import get_simulator
    from sbi_gen.simulation import simulate

    check_writable_folder(out.parent, "-o/--out")
    simulator = get_simulator(args.simulator, **parse_options(args.option))
    with exclusive_output(out):
        if out.exists():
            raise DataError(f"-o/--out: {out} exists; sbi-gen never overwrites simulations: choose another path")
        data = simulate(simulator, args.simulations or DEFAULT_NUM, seed=args.seed or 0,
                        chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE, signals=args.signals)
        save_simulations(out, data)
    what = "signal" if args.signals else "x"
    print(f"wrote {len(data)} pairs (theta {list(data.theta.shape)}, {what} {list(data.x.shape)}) to {out}")
    return 0


def _simulate_store(args: argparse.Namespace, out: Path) -> int:
    from sbi_gen.executors import check_resume, make_executor, resume_store, simulate_to_store
    from sbi_gen.registry import get_simulator
    from sbi_gen.store import SimulationStore

    if args.resume:
        if not out.exists():
            raise DataError(f"--resume: no store at {out} to complete")
        check_resume(out, simulator=args.simulator, simulations=args.simulations, seed=args.seed,
                     chunk_size=args.chunk_size, non_finite=args.non_finite, options=parse_options(args.option),
                     signals=args.signals or None)
        if SimulationStore.open(out).is_complete:
            print(f"{out} is already complete; nothing to simulate")
            return 0
    elif out.exists():
        raise DataError(f"-o/--out: {out} exists; sbi-gen never overwrites simulations: choose another path, or "
                        "--resume an interrupted run")
    elif args.simulator is None:
        raise DataError("name the simulator to run (see `sbi-gen plugins`)")
    check_writable_folder(out.parent, "-o/--out")
    simulator = None if args.resume else get_simulator(args.simulator, **parse_options(args.option))
    try:
        with make_executor(args.workers, args.scheduler) as executor:
            if args.resume:
                report = resume_store(out, executor, progress=not args.no_progress,
                                      background_write=not args.sync_write)
            else:
                report = simulate_to_store(
                    simulator, args.simulations or DEFAULT_NUM, out, seed=args.seed or 0,
                    chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE, executor=executor,
                    non_finite=args.non_finite or "drop",
                    progress=not args.no_progress, background_write=not args.sync_write, signals=args.signals,
                )
    except KeyboardInterrupt:
        store = SimulationStore.open(out) if out.exists() else None
        done = f"{int(store.status().sum())} of {store.num_chunks} chunks are complete in {out}; " if store else ""
        print(f"sbi-gen simulate: interrupted; {done}`sbi-gen simulate --resume -o {out}` completes it",
              file=sys.stderr)
        return 130
    print(report.summary())
    if report.chunks_complete < report.num_chunks:
        raise UntrustworthyResultError(
            f"{out} is incomplete ({report.chunks_complete}/{report.num_chunks} chunks): "
            f"`sbi-gen simulate --resume -o {out}` completes it"
        )
    return 0
