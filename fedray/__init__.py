"""fedray: Ray-based simulation of resource-efficient federated multimodal learning.

Importing fedray never starts Ray; see :func:`fedray.api.run_experiment`.
"""

__version__ = "0.1.0"
