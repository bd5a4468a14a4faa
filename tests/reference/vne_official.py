"""Von Neumann entropy of embeddings, transcribed from the official code.

Repository: jaeill/CVPR23-VNE, file vne/__init__.py,
commit ff4fa0d57ff0bea90169bd4e8e53e911f977fd7a, function get_vne (the svd form; the file's
commented eigh form is equivalent). Deviation: numpy's sqrt of the batch size is replaced by
math.sqrt (same value).
"""

import math

import torch


def get_vne(H: torch.Tensor) -> torch.Tensor:
    Z = torch.nn.functional.normalize(H, dim=1)
    sing_val = torch.svd(Z / math.sqrt(Z.shape[0]))[1]
    eig_val = sing_val**2
    return -(eig_val * torch.log(eig_val)).nansum()
