"""Gradient reversal (DANN) and VQ-VAE's codebook/commitment loss, transcribed from the official
code.

Source
------
Gradient reversal:
Repository: https://github.com/fungtion/DANN (the DANN PyTorch implementation)
File:       models/functions.py (``ReverseLayerF``; used by models/model.py at commit
            691672b90bf6071776b522bca2febba8b50edf90: ``ReverseLayerF.apply(feature, alpha)``)

VQ-VAE loss:
Repository: https://github.com/google-deepmind/sonnet
File:       sonnet/src/nets/vqvae.py
Function:   ``VectorQuantizer.__call__`` (distances, argmax(-distances), e_latent_loss,
            q_latent_loss, loss, the straight-through output)
Commit:     38adf3aa3f6364d16fae2d94c3145fed821e1836

Deviations
----------
* Sonnet is TensorFlow: tf.stop_gradient -> .detach(), tf.reduce_mean -> .mean(),
  tf.argmax -> torch.argmax, embedding_lookup -> indexing. Its embeddings are [D, K]; here the
  codebook is [K, D] (transposed on entry).
* The DANN domain classifier here is one linear layer and BCE on its logit (the repository's is
  an MLP with a 2-way LogSoftmax); the reversal layer is verbatim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd import Function


class ReverseLayerF(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha

        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        output = grad_output.neg() * ctx.alpha

        return output, None


def dann_domain(features, weight, bias, domain, lam=1.0, reduction="mean"):
    z = ReverseLayerF.apply(features, lam) @ weight + bias
    return F.binary_cross_entropy_with_logits(z, domain, reduction=reduction)


def vector_quantizer(inputs, codebook, commitment_cost=0.25):
    """(loss, straight-through quantized) of Sonnet's VectorQuantizer on inputs [N, D]."""
    embeddings = codebook.t()  # sonnet's [embedding_dim, num_embeddings]
    flat_inputs = inputs.reshape(-1, embeddings.shape[0])
    distances = (
        (flat_inputs**2).sum(1, keepdim=True)
        - 2 * flat_inputs @ embeddings
        + (embeddings**2).sum(0, keepdim=True)
    )
    encoding_indices = torch.argmax(-distances, 1)
    quantized = embeddings.t()[encoding_indices]
    e_latent_loss = ((quantized.detach() - inputs) ** 2).mean()
    q_latent_loss = ((quantized - inputs.detach()) ** 2).mean()
    loss = q_latent_loss + commitment_cost * e_latent_loss
    # Straight Through Estimator
    quantized = inputs + (quantized - inputs).detach()
    return loss, quantized
