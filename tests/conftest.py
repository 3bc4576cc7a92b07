"""Shared test setup: a small thread count keeps tests fair on a 2-core machine."""

import torch

torch.set_num_threads(2)
