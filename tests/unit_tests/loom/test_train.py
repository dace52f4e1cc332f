from metaspider.loom.train import read_layer_candidates


def test_read_windows_never_go_above_the_lowest_injected_block():
    late_third, inject = tuple(range(20, 29)), (26, 27, 28)
    candidates = read_layer_candidates(late_third, inject)
    assert candidates == [(24, 25, 26), (21, 22, 23), tuple(range(20, 27))]
    assert all(max(window) <= min(inject) for window in candidates)


def test_read_windows_with_few_eligible_layers():
    assert read_layer_candidates((3, 4), (4, 5)) == [(3, 4)]
    assert read_layer_candidates((20, 21, 22, 23), (20, 21)) == [(20,)]
