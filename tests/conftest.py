"""Settings for the whole test suite."""

import torch

# The tests run many small tensor operations; on a 2-core machine shared with other work,
# torch's intra-op threads mostly wait on each other (measured: 10x slower fast-joints steps
# with 2 threads under load than with 1). One thread keeps the suite fast and steady.
torch.set_num_threads(1)
