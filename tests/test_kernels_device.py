"""The kernels for real hardware: lowering to Triton / Mosaic (no device needed) and, where a GPU or
TPU is present, compiled runs against the reference (skipped elsewhere)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lpgnas.kernels import build_ell_layout, packed_aggregate, quantize_and_pack
from lpgnas.kernels.aggregate.wrapper import _aggregate


def _has(platform: str) -> bool:
    try:
        return len(jax.devices(platform)) > 0
    except RuntimeError:
        return False


HAS_GPU = _has("gpu")
HAS_TPU = _has("tpu")

N, F = 45, 37
_rng = np.random.default_rng(0)
_deg = _rng.integers(0, 7, size=N)
_deg[2] = 30
R = np.repeat(np.arange(N), _deg)
S = _rng.integers(0, N, size=R.size)
W = _rng.integers(-2, 3, size=R.size).astype(np.float32)
LAYOUT = build_ell_layout(S, R, N, edge_weights=W, max_width=8)
X = _rng.normal(size=(N, F)).astype(np.float32)

# kernel flavour, platform to lower for, custom call that must appear
TARGETS = [("pallas_gpu", "cuda", "__gpu$xla.gpu.triton"), ("pallas_tpu", "tpu", "tpu_custom_call")]


@pytest.mark.parametrize("backend, platform, target", TARGETS)
@pytest.mark.parametrize(
    "bits, accumulate, out_bits", [(1, "float32", None), (4, "float32", 2), (8, "int32", None), (2, "int32", 8)]
)
def test_kernels_lower_for_the_device(backend, platform, target, bits, accumulate, out_bits):
    """Lowering checks the backend rules (Triton: power-of-two shapes, supported primitives; Mosaic:
    block shapes, scalar prefetch, DMA) without hardware."""
    p = quantize_and_pack(X, bits, signed=bits > 1, granularity="tensor")

    def fn(p, lay):
        return _aggregate(p, lay, backend=backend, out_bits=out_bits, out_signed=True, accumulate=accumulate,
                          weight_bits=None, block_rows=8, block_features=64, num_warps=4, num_stages=2,
                          interpret=False)

    exported = jax.export.export(
        jax.jit(fn), platforms=[platform],
        disabled_checks=[jax.export.DisabledSafetyCheck.custom_call(target)],
    )(p, LAYOUT)
    launches = len(LAYOUT.buckets) + (1 if LAYOUT.tail.rows else 0)
    assert exported.mlir_module().count(f"custom_call @{target}") == launches


def _check_native(backend):
    for bits, signed in [(1, True), (2, False), (4, True), (8, False)]:
        p = quantize_and_pack(X, bits, signed=signed)
        out = packed_aggregate(p, LAYOUT, backend=backend, interpret=False)
        want = packed_aggregate(p, LAYOUT, backend="reference")
        np.testing.assert_allclose(np.asarray(out), np.asarray(want), rtol=1e-4, atol=1e-4)
    p = quantize_and_pack(X, 4, signed=True, granularity="tensor")
    out = packed_aggregate(p, LAYOUT, backend=backend, interpret=False, accumulate="int32")
    want = packed_aggregate(p, LAYOUT, backend="reference", accumulate="int32")
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), rtol=1e-4, atol=1e-4)
    q = packed_aggregate(p, LAYOUT, backend=backend, interpret=False, out_bits=4)
    qr = packed_aggregate(p, LAYOUT, backend="reference", out_bits=4)
    np.testing.assert_allclose(np.asarray(q.scale), np.asarray(qr.scale), rtol=1e-4)
    assert q.words.dtype == jnp.uint32 and q.words.shape == qr.words.shape


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU")
def test_triton_kernel_on_gpu():
    with jax.default_device(jax.devices("gpu")[0]):
        _check_native("pallas_gpu")


@pytest.mark.skipif(not HAS_TPU, reason="needs a TPU")
def test_mosaic_kernel_on_tpu():
    with jax.default_device(jax.devices("tpu")[0]):
        _check_native("pallas_tpu")
