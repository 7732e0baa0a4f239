"""A training script that knows nothing about slsa-dist (for the zero-code bootstrap test)."""

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
tensor = torch.ones(1)
dist.all_reduce(tensor)
assert tensor.item() == dist.get_world_size()
dist.barrier()
dist.destroy_process_group()
