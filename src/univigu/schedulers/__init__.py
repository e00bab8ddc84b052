from .scheduling_discrete_flow import DiscreteFlowScheduler, DiscreteFlowSchedulerOutput


__all__ = ["DiscreteFlowScheduler", "DiscreteFlowSchedulerOutput"]
