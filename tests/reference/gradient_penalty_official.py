"""Gradient penalties of GAN critics, transcribed from the official code.

R1 (``r1_official``)
--------------------
Repository: https://github.com/NVlabs/stylegan2-ada-pytorch
File:       training/loss.py, ``StyleGAN2Loss.accumulate_gradients``, the ``do_Dr1`` branch
            (commit 6f160b3d22b8b178ebe533a50d4d5e63aedba21d, around line 123)::

                real_img_tmp = real_img.detach().requires_grad_(do_Dr1)
                real_logits = self.run_D(real_img_tmp, real_c, sync=sync)
                ...
                r1_grads = torch.autograd.grad(outputs=[real_logits.sum()],
                    inputs=[real_img_tmp], create_graph=True, only_inputs=True)[0]
                r1_penalty = r1_grads.square().sum([1,2,3])
                loss_Dr1 = r1_penalty * (self.r1_gamma / 2)

Deviations: ``D`` is any callable of the images (no ``real_c``, no augment pipe, no
``conv2d_gradfix.no_weight_gradients``, which only speeds the double backward up); the sum runs
over every axis but the batch (the official's ``[1,2,3]`` for NCHW images); returns the
per-sample penalty.

WGAN-GP (``wgan_gp_official``)
------------------------------
Repository: https://github.com/igul222/improved_wgan_training (TensorFlow)
File:       gan_toy.py / gan_64x64.py, the ``MODE == 'wgan-gp'`` branch::

                alpha = tf.random_uniform(shape=[BATCH_SIZE,1], minval=0., maxval=1.)
                differences = fake_data - real_data
                interpolates = real_data + (alpha*differences)
                gradients = tf.gradients(Discriminator(interpolates), [interpolates])[0]
                slopes = tf.sqrt(tf.reduce_sum(tf.square(gradients), reduction_indices=[1]))
                gradient_penalty = tf.reduce_mean((slopes-1.)**2)
                disc_cost += LAMBDA*gradient_penalty

Transcribed to torch: ``tf.gradients(y, [x])`` is the gradient of ``y.sum()``, kept
differentiable (``create_graph=True``, as TF's graph is); ``alpha`` is an argument (one per
sample, broadcast over the sample's axes as the official ``[BATCH_SIZE, 1]`` over flattened
data); the reduction over every axis but the batch; returns the per-sample
``LAMBDA * (slopes - 1)^2``.
"""

from __future__ import annotations

import torch


def r1_official(real_img, D, r1_gamma=10.0):
    real_img_tmp = real_img.detach().requires_grad_(True)
    real_logits = D(real_img_tmp)
    r1_grads = torch.autograd.grad(
        outputs=[real_logits.sum()], inputs=[real_img_tmp], create_graph=True, only_inputs=True
    )[0]
    r1_penalty = r1_grads.square().sum(list(range(1, real_img.ndim)))
    return r1_penalty * (r1_gamma / 2)


def wgan_gp_official(real_data, fake_data, alpha, Discriminator, LAMBDA=10.0):
    alpha = alpha.reshape((-1,) + (1,) * (real_data.ndim - 1))
    differences = fake_data - real_data
    interpolates = real_data + (alpha * differences)
    if not interpolates.requires_grad:  # (TF differentiates any tensor of its graph)
        interpolates.requires_grad_(True)
    gradients = torch.autograd.grad(
        Discriminator(interpolates).sum(), [interpolates], create_graph=True
    )[0]
    slopes = torch.sqrt(torch.sum(torch.square(gradients), dim=list(range(1, real_data.ndim))))
    return LAMBDA * (slopes - 1.0) ** 2
