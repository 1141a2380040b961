"""What the stages of one build share: inputs, settings, the model so far, the report."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgepipe.config.project import ProjectConfig
from edgepipe.config.schema import TargetProfile
from edgepipe.config.targets import ResolvedTarget
from edgepipe.pipeline.progress import Progress
from edgepipe.pipeline.report import BuildReport
from edgepipe.tflite.model import TfliteModel


@dataclass
class BuildContext:
    """Mutable state passed from stage to stage; each stage fills its part."""

    project: ProjectConfig
    target: ResolvedTarget
    out_dir: Path
    progress: Progress
    report: BuildReport
    settings: object = None          # keras_io.convert.ConvertSettings
    inputs: object = None            # pipeline.inputs.BuildInputs
    model: object = None             # the Keras model to convert (pruned, if pruning ran)
    tflite_bytes: bytes = b""
    tflite: TfliteModel | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)
    pending: dict[str, bytes] = field(default_factory=dict)  # files for the emit stage to write (all at once)
    io_contract: object = None       # backends.IOContract: the I/O types the profile asks for
    judgement: object = None         # backends.Judgement of the converted model (the check stage)
    measured: object = None          # harness.device.DeviceRun of the converted model, if already measured
    cache: object = None             # pipeline.cache.StageCache: get_or_compute(stage, key_parts, compute)

    @property
    def profile(self) -> TargetProfile:
        return self.target.profile

    def apply(self, outcome) -> None:
        """Take a stage's :class:`~edgepipe.pipeline.outcome.StageOutcome` into the report and the build."""
        from edgepipe.tflite.model import parse_tflite

        self.report.sections.update(outcome.sections)
        self.report.checks += outcome.checks
        self.report.notes += outcome.notes
        self.pending.update(outcome.files)
        if outcome.tflite is not None:
            self.tflite_bytes, self.tflite = outcome.tflite, parse_tflite(outcome.tflite, "converted model")
        if outcome.settings is not None:
            self.settings = outcome.settings
        if outcome.keras_model is not None:
            self.model = outcome.keras_model
        self.measured = outcome.measured or self.measured

    @contextmanager
    def stage(self, name: str):
        """Announce a stage and record its wall time in the report.

        An exception that is not edgepipe's own error is a bug (ours or a tool's): it leaves as
        an :class:`~edgepipe.errors.InternalError` (exit 3) that names the stage.
        """
        from edgepipe.errors import EdgepipeError, InternalError

        self.progress.stage(name)
        t0 = time.perf_counter()
        try:
            yield
        except EdgepipeError:
            raise
        except Exception as exc:  # noqa: BLE001 - named once, here, for every stage
            raise InternalError(f"internal error in the {name} stage: {type(exc).__name__}: {exc}") from exc
        self.report.timings[name] = round(time.perf_counter() - t0, 3)
