"""Load balancing and the training data pipeline, against hand-computed numbers and transformers."""

import numpy as np
import pytest
import torch

from dodoco.training.balance import aux_loss, expert_load, update_bias
from dodoco.training.data import TrainWindows, eval_windows
from dodoco.training.train import TrainConfig, lr_at


def test_aux_loss_hand_computed():
    # E=4, K=1, T=4 tokens; probs of every token = softmax([ln 4, 0, 0, 0]) = [4/7, 1/7, 1/7, 1/7]
    logits = torch.tensor([[np.log(4.0), 0.0, 0.0, 0.0]] * 4)
    index = torch.tensor([[0], [0], [0], [1]])  # counts [3, 1, 0, 0]
    # f = E/(K T) * counts = [3, 1, 0, 0]; sum f P = 3*4/7 + 1/7 = 13/7
    assert float(aux_loss(logits, index, 1, E=4, K=1)) == pytest.approx(13 / 7)
    # per sequence (2 groups of 2 tokens): group 1 counts [2,0,0,0] -> f [4,0,0,0] -> 16/7;
    # group 2 counts [1,1,0,0] -> f [2,2,0,0] -> 8/7 + 2/7 = 10/7; mean 13/7 as well here
    assert float(aux_loss(logits, index, 2, E=4, K=1)) == pytest.approx((16 / 7 + 10 / 7) / 2)


def test_aux_loss_is_one_when_balanced():
    logits = torch.zeros(8, 4)  # uniform probs
    index = torch.tensor([[0, 1], [2, 3]] * 4)
    assert float(aux_loss(logits, index, 1, E=4, K=2)) == pytest.approx(1.0)


def test_aux_loss_matches_transformers_up_to_k():
    """transformers' Switch-style load_balancing_loss_func (one layer) is K times the normalisation here."""
    from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 16, generator=g)
    index = torch.topk(torch.softmax(logits, -1), 4, dim=-1).indices
    ours = float(aux_loss(logits, index, 1, E=16, K=4))
    theirs = float(load_balancing_loss_func((logits,), num_experts=16, top_k=4))
    assert theirs == pytest.approx(4 * ours, rel=1e-5)


def test_aux_loss_gradient_reaches_router_logits():
    logits = torch.randn(8, 4, requires_grad=True)
    index = torch.topk(logits, 2, dim=-1).indices
    aux_loss(logits, index, 1, E=4, K=2).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_bias_update_sign_rule():
    class Router(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.e_score_correction_bias = torch.zeros(4)

    r = Router()
    index = torch.tensor([[0], [0], [0], [1]])  # loads [3, 1, 0, 0], mean 1
    update_bias(r, index, 0.01)
    assert r.e_score_correction_bias.tolist() == pytest.approx([-0.01, 0.0, 0.01, 0.01])
    assert expert_load(index, 4).tolist() == [3.0, 1.0, 0.0, 0.0]


def _streams():
    return {"a": np.arange(1000, dtype=np.int32), "b": np.arange(5000, 5600, dtype=np.int32)}


def test_windows_are_seeded_slices_of_the_streams():
    w1, w2 = TrainWindows(_streams(), 32, 4, seed=3), TrainWindows(_streams(), 32, 4, seed=3)
    other = TrainWindows(_streams(), 32, 4, seed=4)
    assert w1.per_epoch == (1000 // 32 - 1) + (600 // 32 - 1)
    for step in (0, 5, 11, 40):  # 40 steps x 4 crosses several epochs
        b = w1.batch(step)
        assert np.array_equal(b, w2.batch(step))
        for row in b:  # consecutive ids of one stream: a contiguous window
            assert np.all(np.diff(row) == 1) and (row[0] < 1000 or row[0] >= 5000)
    assert not np.array_equal(w1.batch(0), other.batch(0))


def test_epoch_uses_every_window_once():
    w = TrainWindows(_streams(), 32, 1, seed=0)
    starts = sorted(int(w.batch(s)[0, 0]) for s in range(w.per_epoch))
    assert len(set(starts)) == w.per_epoch


def test_eval_windows_are_the_first_heldout_tokens():
    out = eval_windows({"a": np.arange(100, dtype=np.int32)}, 16, per_domain=3)
    assert out["a"].shape == (3, 16) and out["a"][2, 0] == 32


def test_lr_schedule():
    cfg = TrainConfig("qwen3_moe", steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.55)  # half-way down the cosine: 0.1 + 0.9 * 0.5
    assert lr_at(100, cfg) == pytest.approx(0.1)
