"""Settings for every test under the repository.

Hypothesis's per-example deadline (200 ms by default) measures wall time, which on a
shared two-core machine a neighbour's load stretches far past any example's real cost;
a deadline failure there says nothing about the code. Speed is measured in bench/,
so the suite runs without deadlines.
"""

from hypothesis import settings

settings.register_profile("leadloop", deadline=None)
settings.load_profile("leadloop")
