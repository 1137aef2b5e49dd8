"""A window-aggregate import replays as simulate simulates it: one step, its tokens split evenly over
the source ranks in whole tokens, each rank's top-k synthesised from its counts."""

import numpy as np

from dodoco.ep.steps import uniform_split
from dodoco.findings.synthetic import write_counts_run
from dodoco.replay.config import ReplayConfig, build_cases


def test_a_window_run_replays_as_one_step_split_in_whole_tokens(tmp_path):
    rng = np.random.default_rng(0)  # 3 passes of 255 tokens, K = 2 of E = 16 with a skewed popularity, 2 layers
    p = rng.dirichlet(np.full(16, 0.5), size=2)
    counts = np.zeros((3, 2, 16), np.uint32)
    for s in range(3):
        for layer in range(2):
            topk = np.stack([rng.choice(16, 2, replace=False, p=p[layer]) for _ in range(255)])
            counts[s, layer] = np.bincount(topk.ravel(), minlength=16)
    path = write_counts_run(tmp_path / "w", counts, model="prod", condition="serving", K=2, granularity="window")
    cfg = ReplayConfig(runs=(str(path),), mock="none", batch=1)
    cases, prov = build_cases(cfg, 4)
    real = [c for c in cases if c.kind == "real"]
    assert [(c.step, c.layer) for c in real] == [(0, 0), (0, 1)] and prov["source_split"] == "uniform"
    window = counts.astype(np.int64).sum(axis=0)  # [L, E]
    split = uniform_split(window, 4, 2)  # [N, L, E]
    for c in real:
        np.testing.assert_array_equal(c.src, split[:, c.layer])
        assert c.tokens.tolist() == (split[:, c.layer].sum(-1) // 2).tolist()  # whole tokens per rank
        for i, topk in enumerate(c.topk):  # each rank's synthesised top-k reproduces its counts
            assert np.bincount(np.asarray(topk).ravel(), minlength=16).sum() == split[i, c.layer].sum()
