"""The example plugin passes sbi-gen's conformance kit.

Run from this folder after ``pip install -e .`` (so the ``oscillator`` entry point is found)::

    python -m pytest tests
"""

from sbi_gen.testing import check_simulator


def test_the_oscillator_conforms():
    """Its prior, shapes, seeding, describe() round trip and exact likelihood follow the simulator contract."""
    report = check_simulator("oscillator")
    assert "log_likelihood prefers the true theta" in report.checks


def test_the_oscillator_conforms_with_other_options():
    check_simulator("oscillator", simulator_options={"num_times": 5, "noise": 0.3})
