"""``python -m leadloop_metrics.dashboards``: write or check the dashboards' JSON."""

import sys

from leadloop_metrics.dashboards import main

sys.exit(main())
