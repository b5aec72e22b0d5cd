"""A discrete-event simulator that drives the pure scheduling core (`core/`) unchanged.

A scenario is a cluster (workers as `WorkerSlots`), a workload (arrivals with their
`TaskDemand`, reference work and dependencies) and a device speed table; `simulate` runs
one policy over it on a `ManualClock` and returns per-task records; `metrics.figures`
turns them into the report's figures. No grpc, no database, no sleeping.
"""

from services.scheduler.simulator.loop import RunConfig, Simulation, first_placements, simulate
from services.scheduler.simulator.model import Arrival, Cluster, Scenario, SpeedTable, Workload
from services.scheduler.simulator.policies import POLICIES, FifoPolicy, LeastLoadedPolicy, SwitchyardPolicy

__all__ = [
    "POLICIES",
    "Arrival",
    "Cluster",
    "FifoPolicy",
    "LeastLoadedPolicy",
    "RunConfig",
    "Scenario",
    "Simulation",
    "SpeedTable",
    "SwitchyardPolicy",
    "Workload",
    "first_placements",
    "simulate",
]
