"""Ray Tune sweeps: sweep files (``spec``), the trainable and runner (the only Ray code here), reports and plots.

``import fedray.tune`` does not import Ray; ``fedray.tune.runner`` does.
"""

from fedray.tune.report import write_report
from fedray.tune.spec import SweepError, SweepSpec, load_sweep

__all__ = ["SweepError", "SweepSpec", "load_sweep", "write_report"]
