"""The memory bank's greedy k-centre coreset."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from inspectors.training.patchcore import greedy_coreset  # noqa: E402


def _farthest_point_reference(z: torch.Tensor, first: int, size: int) -> list[int]:
    """Textbook farthest-point selection with explicit distances."""
    chosen = [first]
    for _ in range(1, size):
        nearest = torch.cdist(z, z[chosen]).min(1).values
        chosen.append(int(nearest.argmax()))
    return chosen


def test_picks_the_farthest_point_each_step() -> None:
    candidates = torch.randn(400, 24, generator=torch.Generator().manual_seed(1))
    chosen = greedy_coreset(candidates, 40, projection_dim=24, seed=3)
    gen = torch.Generator().manual_seed(3)
    proj = torch.randn(24, 24, generator=gen) / 24**0.5
    first = int(torch.randint(400, (1,), generator=gen))
    assert chosen.tolist() == _farthest_point_reference(candidates @ proj, first, 40)


def test_keeps_a_rare_cluster_that_random_sampling_misses() -> None:
    gen = torch.Generator().manual_seed(0)
    common = torch.randn(20_000, 32, generator=gen)
    rare = torch.randn(5, 32, generator=gen) * 0.1 + 12.0  # five far-away patches among 20,005
    candidates = torch.cat([common, rare])
    chosen = greedy_coreset(candidates, 64, projection_dim=16, seed=0)
    assert len(set(chosen.tolist())) == 64
    assert (chosen >= 20_000).any(), "the coreset lost the rare cluster"
    coreset_radius = torch.cdist(candidates, candidates[chosen]).min(1).values.max()
    random_subset = torch.randperm(len(candidates), generator=gen)[:64]
    random_radius = torch.cdist(candidates, candidates[random_subset]).min(1).values.max()
    assert coreset_radius < 0.6 * random_radius


def test_returns_everything_when_there_are_fewer_candidates_than_the_bank() -> None:
    assert greedy_coreset(torch.randn(10, 4), 16, projection_dim=4, seed=0).tolist() == list(range(10))
