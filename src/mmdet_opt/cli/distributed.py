"""One process, or one of several started by torchrun: each takes images rank::world_size and
rank 0 gathers what they found, in the order a single process would have it."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import CliError


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, items: list) -> list:
        return items[self.rank::self.world]

    def gather(self, obj) -> list | None:
        """Every process's ``obj`` by rank on rank 0; None on the others."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every process."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


def start_processes(device: str | None) -> tuple[Processes, str]:
    """This process's place (from torchrun's RANK / WORLD_SIZE / LOCAL_RANK) and its device.

    Several processes talk over NCCL on CUDA (each on cuda:LOCAL_RANK) and over gloo on a CPU.
    """
    import torch

    from ..arguments import check_device, default_device

    try:
        device = check_device(device or default_device())
    except ValueError as exc:
        raise CliError(f"--device: {exc}") from None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Processes(), device
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise CliError(f"process {rank} has LOCAL_RANK {local_rank} but torch sees "
                           f"{torch.cuda.device_count()} CUDA devices")
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Processes(rank, world), device


def run_in_processes(args, body) -> int:
    """``body(args, processes, device)`` in this process's place (``start_processes``), the process
    group closed after it."""
    processes, device = start_processes(args.device)
    try:
        return body(args, processes, device)
    finally:
        processes.close()
