"""Server side: the server's state, round planning and applying, the round loop, the Fleet protocol. No Ray."""

from fedray.server.fleet import ClientError, Fleet, InProcessFleet, RoundResults
from fedray.server.loop import Checkpoint, Event, Finished, RoundDone, RunOutcome, run_rounds
from fedray.server.rounds import (
    ClientRow,
    CohortSelector,
    RoundContext,
    RoundPlan,
    RoundRecord,
    Selection,
    UniformCohort,
    apply_round,
    cohort_size,
    plan_round,
)
from fedray.server.setup import GlobalEvaluator, build_server
from fedray.server.state import ServerState, initial_state

__all__ = ["Checkpoint", "ClientError", "ClientRow", "CohortSelector", "Event", "Finished", "Fleet", "GlobalEvaluator",
           "InProcessFleet", "RoundContext", "RoundDone", "RoundPlan", "RoundRecord", "RoundResults", "RunOutcome",
           "Selection", "ServerState", "UniformCohort", "apply_round", "build_server", "cohort_size", "initial_state",
           "plan_round", "run_rounds"]
