from odmm.stats import binomial_interval


def test_binomial_interval_contains_mean_and_is_tight():
    lo, hi = binomial_interval(3000, 0.1, 0.999)
    assert lo < 300 < hi
    assert 40 < 300 - lo < 60 and 40 < hi - 300 < 60  # ~3.3 standard deviations (16.4)


def test_binomial_edges():
    assert binomial_interval(100, 0.0) == (0, 0)
    assert binomial_interval(100, 1.0) == (100, 100)
    assert binomial_interval(0, 0.5) == (0, 0)
