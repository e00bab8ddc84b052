# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
from .visualization import save_video_grid, video_grid

__all__ = ["save_video_grid", "video_grid"]
