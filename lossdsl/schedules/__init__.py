"""Chunked schedules over a large class dim V (issue 5): the plans that say whether and how a
loss runs piece by piece, and the runners that do it, for torch and jax.

  plan.py          the chunk plan: a loss in *stat form* (log_softmax(z) = z - logsumexp(z)),
                   split into a V-chunk side, row statistics over V and a row side; ChunkError
                   names what does not chunk; `evaluate_chunked` is its float64 meaning
  rowplan.py       the row plan: a loss split along its batch dim B for blocks of rows
  subfunctions.py  what the runners share: generated sub-functions, carriers, array helpers
  vsliced.py       `ChunkedLoss`: the V-sliced schedule (compile(schedule="chunked"),
                   compile_linear(chunk=...)); its torch autograd.Function in
                   vsliced_torch.py, its jax loop in vsliced_jax.py
  rows.py          `RowBlocked`: the row-blocked schedule (compile_linear(rows=R)); its torch
                   autograd.Function in rows_torch.py, its jax custom_vjp in rows_jax.py

lossdsl/schedules/build.py builds these per spec variant and reduction (`Spec.compile(schedule=
"chunked")`, `Spec.compile_linear`).
"""
