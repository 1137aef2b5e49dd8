"""Capture on a CUDA device: same counts as on the CPU reference, router output matched, bf16 too."""

import numpy as np
import pytest
import torch

from dodoco.models.tiny import FAMILIES, build_tiny
from dodoco.observe.capture import capture

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_cuda_capture_matches_router_and_cpu(family):
    model = build_tiny(family, 512, seed=1).cuda()
    ids = torch.randint(0, 512, (4, 64), generator=torch.Generator().manual_seed(0))
    routers = []
    handles = [
        m.register_forward_hook(lambda m, a, out: routers.append(out[2].cpu()))
        for n, m in model.named_modules()
        if n.endswith(".gate") and hasattr(m, "top_k")
    ]
    with torch.no_grad(), capture(model, traces=True) as cap:
        model(input_ids=ids.cuda())
    for h in handles:
        h.remove()
    topk, _ = cap.traces()
    for l, r in enumerate(routers):
        np.testing.assert_array_equal(topk[:, l, :], r.numpy())
    np.testing.assert_array_equal(cap.counts().sum(2), np.full((4, cap.num_layers), 64 * FAMILIES[family].K))
    bf16 = build_tiny(family, 512, seed=1).to("cuda", torch.bfloat16)
    with torch.no_grad(), capture(bf16) as cap16:
        bf16(input_ids=ids.cuda())
    assert cap16.counts().shape == cap.counts().shape
    np.testing.assert_array_equal(cap16.counts().sum(2), cap.counts().sum(2))
