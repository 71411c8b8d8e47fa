"""The validation set's share of the seed spread (docs/noise-and-cost.md): a per-image
bootstrap of each baseline checkpoint's mIoU, run on the smoke run's checkpoints."""
import json

import numpy as np

from bpkd.bench import eval_bootstrap

from conftest import run


def test_miou_of_summed_areas_leaves_out_classes_no_image_has():
    intersect = np.array([[1.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    union = np.array([[2.0, 0.0, 0.0], [2.0, 4.0, 0.0]])
    assert eval_bootstrap.miou(intersect.sum(0), union.sum(0)) == 50.0  # class 2: no union, not a 0
    # Identical images: every draw has the same mIoU, no standard error.
    same = eval_bootstrap.bootstrap(np.tile([[1.0, 3.0]], (5, 1)), np.tile([[2.0, 4.0]], (5, 1)), 200)
    assert np.allclose(same, 62.5)
    # Different images: the draws spread, around the full set's mIoU (2/3 and 1/5: 43.3),
    # the same for a seed.
    intersect, union = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.array([[2.0, 1.0, 0.0], [1.0, 4.0, 0.0]])
    assert abs(eval_bootstrap.miou(intersect.sum(0), union.sum(0)) - 130 / 3) < 1e-9
    draws = eval_bootstrap.bootstrap(intersect, union, 500, seed=1)
    assert draws.std() > 5 and 30.0 <= draws.mean() <= 60.0
    assert np.array_equal(draws, eval_bootstrap.bootstrap(intersect, union, 500, seed=1))


def test_bootstrap_recomputes_each_checkpoints_miou_from_its_images(smoke_repo):
    out = run(["python", "-m", "bpkd.bench.eval_bootstrap", "--seeds", "0", "1", "--resamples", "100"],
              smoke_repo).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for r in result["runs"]:
        evaluated = json.loads((smoke_repo / f"metrics/eval/synthetic/hrnet_w48_w18s/seed{r['seed']}/baseline.json")
                               .read_text())["mIoU"]
        # the per-image areas sum to the metric's own score, which is evaluate@'s
        assert r["mIoU"] == evaluated and abs(r["recomputed"] - evaluated) < 0.006
        assert r["images"] > 1 and r["bootstrap_se"] > 0
    assert result["median_bootstrap_se"] == np.median([r["bootstrap_se"] for r in result["runs"]])
