from .visualization import save_video_grid, video_grid

__all__ = ["save_video_grid", "video_grid"]
