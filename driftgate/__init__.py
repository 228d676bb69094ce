"""driftgate: Prefect 3 flows that keep production ML models healthy."""

__version__ = "0.1.0"
