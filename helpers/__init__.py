"""Helpers for *Attention, Step by Step*.

One module per idea; tensors in, tensors out.  Where *Dive into Deep Learning* has the same
function or class, the name and call signature are d2l's, so d2l readers feel at home.
"""

from helpers.utils import book_setup, cpu, describe_device, num_gpus, set_seed, try_gpu

__all__ = ["book_setup", "cpu", "describe_device", "num_gpus", "set_seed", "try_gpu"]
__version__ = "0.1.0"
