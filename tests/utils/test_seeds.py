"""Per-example keyed noise: the same numbers for an example whatever its batch."""

import torch

from spin_diff.utils.seeds import example_seeds, keyed_normal, mix64, mix64_int


def test_keyed_noise_is_splitmix64_and_independent_of_the_batch():
    # SplitMix64's first output from state 0 (Steele et al.'s reference generator)
    assert mix64_int(0) & (2**64 - 1) == 0xE220A8397B1DCDAF
    words = torch.tensor([0, 1, -1, 2**62, 12345], dtype=torch.int64)
    assert mix64(words).tolist() == [mix64_int(int(w)) for w in words]
    seeds = example_seeds("set", torch.arange(2000))
    noise = keyed_normal(seeds, stream=5, dim=144)
    assert abs(float(noise.mean())) < 0.01 and abs(float(noise.std()) - 1.0) < 0.01
    # a row's noise is the same alone, in another order, and twice in one batch
    torch.testing.assert_close(keyed_normal(seeds[7:8], 5, 144), noise[7:8], rtol=0, atol=0)
    doubled = keyed_normal(torch.cat([seeds[:3], seeds[:3]]), 5, 144)
    torch.testing.assert_close(doubled[3:], noise[:3], rtol=0, atol=0)
    # other streams and other examples give different noise
    assert not torch.allclose(keyed_normal(seeds[:3], 6, 144), noise[:3])
    assert len(set(seeds.tolist())) == 2000
