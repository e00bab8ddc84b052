"""The old main job, now a test: the whole system end to end on tiny random components (ShapesWorld data, a tiny
Wan2.1-style folder, Knowledge Recall with the real trainer and cache, then t2v, v2t and t2vt on the result)."""

import math

from smoke_pipeline import main


def test_smoke_pipeline_end_to_end(tmp_path):
    report = main(["--out", str(tmp_path / "smoke"), "--num-train", "16", "--num-test", "2", "--train-steps", "30"])
    # 30 steps of Recall must leave the text loss clearly below uniform guessing over the vocabulary.
    assert report["text_loss_after"] < report["text_loss_before"]
    assert report["text_loss_after"] < math.log(38)
    assert len(report["captions"]) == 2 and isinstance(report["joint_caption"], str)
    assert (tmp_path / "smoke" / "t2v_grid.png").exists() and (tmp_path / "smoke" / "t2v_0.mp4").exists()
