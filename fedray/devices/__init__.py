"""Device fleets: heterogeneous client resources and a simulated clock (``fleet`` in the config).

Not to be confused with the *transport* to client hosts (``fedray.server.fleet`` / ``fedray.backend.fleet``):
this package decides what each simulated client's device can hold, compute and transfer, which clients can
train each stage, and how long rounds take on those devices. Pure numpy; ``costs`` (torch) measures the
per-stage figures, ``trace`` reads trace files, ``plot`` draws the time-to-accuracy plot.
"""

from fedray.devices.catalog import fleet_preset, fleet_preset_names
from fedray.devices.clock import Cohort, RoundTiming, client_fields, online, round_record, select_cohort, time_round
from fedray.devices.eligibility import FleetError, check_fleet, eligibility_report, eligible
from fedray.devices.profiles import Devices, assign_classes, build_devices, largest_remainder
from fedray.devices.summary import compare_columns, fleet_summary, reached, time_to_target

__all__ = [
    "Cohort", "Devices", "FleetError", "RoundTiming", "assign_classes", "build_devices", "check_fleet",
    "client_fields", "compare_columns", "eligibility_report", "eligible", "fleet_preset", "fleet_preset_names",
    "fleet_summary", "largest_remainder", "online", "reached", "round_record", "select_cohort", "time_round",
    "time_to_target",
]
