"""Server side: the stage/round orchestrator and the Fleet protocol. No Ray."""

from fedray.server.fleet import ClientError, Fleet, InProcessFleet
from fedray.server.orchestrator import Orchestrator, RunOutcome, cohort_size

__all__ = ["ClientError", "Fleet", "InProcessFleet", "Orchestrator", "RunOutcome", "cohort_size"]
