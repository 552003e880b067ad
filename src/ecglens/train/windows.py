# temporary: removed after the merge (windowing moved to ecglens.artifact.windows)
from ..artifact.windows import inference_window, mean_over_windows, window_starts, windowed_raw  # noqa: F401
