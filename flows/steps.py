"""THE Prefect wrapping of the step table (flows/bodies.py ``Steps``): every stage function as a Prefect task
(no caching: inputs are frames and resources, and a move is an act), and ``FLOW``, the runner that runs the
bodies as flows. Nothing else in the project wraps a function as a task."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from flows._common import banner, retrain_slot, workspace
from flows.bodies import Runner, Steps
from tasks.core.errors import DataError

if TYPE_CHECKING:
    from prefect.futures import PrefectFuture

    from tasks.data.labels import LabelSet
    from tasks.resources.workspace import Workspace
    from tasks.stages.monitoring import MeasuredBatch, MonitorContext
    from tasks.stages.promotion import Approval

P = ParamSpec("P")
R = TypeVar("R")


def _step(name: str, fn: Callable[P, R], /) -> Task[P, R]:
    """A stage function as a Prefect task; never cached: inputs are frames and resources, and a move is an act."""
    return task(name=name, cache_policy=NO_CACHE, persist_result=False)(fn)


TASKS = Steps(_step)


def __getattr__(name: str) -> Any:
    """``steps.<name>``: the task of that step (flows that are not bodies call the table this way)."""
    try:
        return getattr(TASKS, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


class FlowRunner(Runner):
    """Flow mode: the task table, banners in the run log, composed bodies as subflows, approval by pausing."""

    can_pause = True

    @property
    def steps(self) -> Steps:
        return TASKS

    def measure_all(
        self, ws: Workspace, ctx: MonitorContext, paths: Sequence[str], labels: LabelSet | None
    ) -> Iterator[tuple[str, MeasuredBatch | DataError]]:
        """On the flow's task runner (threads, or Dask workers: flows/_common.py ``monitor_task_runner``): up to
        ``monitor_concurrency`` batches in flight, taken back in batch order, so memory holds that many batches."""
        in_flight: deque[tuple[str, PrefectFuture[MeasuredBatch]]] = deque()
        todo = iter(paths)
        window = ws.settings.monitor_concurrency
        while True:
            while len(in_flight) < window and (path := next(todo, None)) is not None:
                in_flight.append((path, TASKS.measure.submit(ws, ctx, path, labels)))  # type: ignore[attr-defined]
            if not in_flight:
                return
            path, future = in_flight.popleft()
            try:
                yield path, future.result()
            except DataError as exc:
                yield path, exc

    def banner(self, text: str) -> None:
        banner(text)

    def say(self, text: str) -> None:
        print(text)  # the flows run with log_prints: a line of the run log

    def workspace(self, home: str | None, config: str | None, model: str | None) -> AbstractContextManager[Workspace]:
        return workspace(home, config, model)

    def atomic(self, ws: Workspace) -> AbstractContextManager[object]:
        """Events go to the API, not the store: each step keeps its own transaction."""
        return nullcontext()

    def retrain_slot(self, name: str | None) -> AbstractContextManager[float | None]:
        return retrain_slot(name)

    def approve(self, ws: Workspace, version: str) -> Approval:
        from flows.promote import wait_for_approval

        return wait_for_approval(ws, version)

    def monitor(self, **params: Any) -> dict[str, Any]:
        from flows.monitor import monitor_flow

        return monitor_flow(**params)

    def retrain(self, **params: Any) -> dict[str, Any]:
        from flows.retrain import retrain_flow

        return retrain_flow(**params)

    def promote(self, **params: Any) -> dict[str, Any]:
        from flows.promote import promote_flow

        return promote_flow(**params)

    def bootstrap(self, **params: Any) -> dict[str, Any]:
        from flows.bootstrap import bootstrap_flow

        return bootstrap_flow(**params)

    def labels(self, **params: Any) -> dict[str, Any]:
        from flows.labels import labels_flow

        return labels_flow(**params)

    def replay(self, **params: Any) -> dict[str, Any]:
        from flows.replay import replay_flow

        return replay_flow(**params)


FLOW = FlowRunner()
