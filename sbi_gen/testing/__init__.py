"""A conformance kit for plugin authors: run the plugin contract on your simulator, estimator or embedding net.

In the spirit of scikit-learn's ``check_estimator``, each check builds the plugin, exercises
it on a small problem and raises :class:`ConformanceError` (an :class:`AssertionError`, so
pytest shows it as a failed assertion) at the first broken rule; the message names the
plugin, the step and what to fix. When every step passes it returns a
:class:`ConformanceReport` listing them.

- :func:`check_simulator`: prior (names, astropy units, support, seeded float32 draws),
  ``simulate`` shapes, dtype and finiteness, seeded reproducibility, ``describe()`` round
  trips, and ``log_likelihood`` / ``reference_posterior`` where declared.
- :func:`check_estimator`: typed capabilities and options, ``fit`` on a tiny problem
  (:class:`BoxToy`: d = 2, a box prior, seconds not minutes), ``sample`` / ``log_prob``
  shapes, seeding, no mass outside the prior, their agreement (a check a correct estimator
  cannot fail), ``posterior(x)`` and an exact save / load round trip.
- :func:`check_embedding`: output ``[B, features]``, finite, differentiable, and
  permutation-invariant along a declared ``set_axis``.

Statistical steps bound the chance that a correct plugin fails by 1e-9 (Hoeffding's
inequality; see :mod:`sbi_gen.testing.core`). In a plugin's own tests::

    from sbi_gen.testing import check_simulator

    def test_my_simulator_conforms():
        check_simulator("my_sim")
"""

from sbi_gen.testing.core import FALSE_ALARM, ConformanceError, ConformanceReport
from sbi_gen.testing.embeddings import check_embedding
from sbi_gen.testing.estimators import SMALL_ESTIMATOR_OPTIONS, BoxToy, check_estimator, small_options
from sbi_gen.testing.simulators import check_simulator

__all__ = [
    "FALSE_ALARM",
    "ConformanceError",
    "ConformanceReport",
    "check_simulator",
    "check_estimator",
    "check_embedding",
    "small_options",
    "SMALL_ESTIMATOR_OPTIONS",
    "BoxToy",
]
