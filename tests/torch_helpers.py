"""Helpers the reference-comparison suites share (torch, float64)."""

from __future__ import annotations

import torch

import lossdsl


def compiled(name, backend="torch", **baked):
    """A shipped spec, compiled."""
    return lossdsl.load(name).compile(backend, **baked)


def assert_same(ours_fn, ref_fn, inputs: dict, wrt: list[str], rtol=1e-10, atol=1e-12):
    """Values and gradients (w.r.t. `wrt`) of ours and the reference, both on float64 torch."""

    def run(fn):
        xs = {
            k: v.detach().clone().requires_grad_(k in wrt) if v.is_floating_point() else v
            for k, v in inputs.items()
        }
        out = fn(**xs)
        gs = torch.autograd.grad(out.sum(), [xs[k] for k in wrt]) if wrt else ()
        return out.detach(), gs

    (a, ga), (b, gb) = run(ours_fn), run(ref_fn)
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=gen(seed)) * scale


def logits_target(shape, seed=0, scale=3.0):
    g = gen(seed)
    b, c = shape
    return torch.randn(b, c, generator=g) * scale, torch.randint(0, c, (b,), generator=g)
