from dodoco.commands.demo import pivot_by_batch


def test_pivot_by_batch_one_row_per_model_condition():
    rows = [{"model": "m", "condition": "c", "batch": b, "gini": g, "max_mean": x}
            for b, g, x in ((1, 0.5, 3.0), (8, 0.4, 2.0), ("all", 0.3, 1.5), (2, 0.9, 9.0))]
    (row,) = pivot_by_batch(rows, (1, 8))
    assert row == {"model": "m", "condition": "c", "gini B=1": 0.5, "max/mean B=1": 3.0, "gini B=8": 0.4,
                   "max/mean B=8": 2.0, "gini all": 0.3, "max/mean all": 1.5}
