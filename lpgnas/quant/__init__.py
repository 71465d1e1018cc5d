"""Quantisers for every component of a GNN.

Layers obtain quantisers through :func:`make_quantizer` and call them as ``q(x, ctx)`` (see
:class:`QuantContext`). Configuration: :class:`QuantSpec` (one tensor) and :class:`QuantConfig`
(a model, with per-layer / per-component overrides, topology buckets and Degree-Quant settings;
named presets in :data:`PRESETS`). Every quantiser has a reference integer path:
``dequantize(*q.to_integer(x)) == q(x, QuantContext())`` bit for bit.
"""

from lpgnas.quant._a2q import a2q_local_fake_quant, a2q_local_grads, a2q_row_error, degree_bucket, nns_select
from lpgnas.quant._context import Identity, QuantContext, Quantizer, identity
from lpgnas.quant._core import (
    IntegerTensor,
    QParams,
    QuantStat,
    dequantize,
    fake_quant,
    qrange,
    round_ste,
    scale_grad,
    sign_fake_quant,
)
from lpgnas.quant._graph import dq_protect_mask, dq_protect_probability, dq_sample_mask, in_degree
from lpgnas.quant._methods import (
    SIGN_RUNNING_STATS,
    QuantPlan,
    affine_qparams,
    make_plan,
    pass_protected,
    quant_apply,
    quant_init,
    quant_params,
    quant_to_integer,
    row_compact_exact,
)
from lpgnas.quant._observers import OBSERVERS
from lpgnas.quant._quantizers import (
    A2QQuantizer,
    AlphaQuantizer,
    BinaryQuantizer,
    FixedPointQuantizer,
    LSQQuantizer,
    StatefulQuantizer,
    TernaryQuantizer,
    UniformQuantizer,
    a2q_memory_kb,
    a2q_memory_penalty,
    avg_bits,
    make_quantizer,
)
from lpgnas.quant._smp import SmoothPropagation, SmpTerms, smoothness, smp_loss_terms
from lpgnas.quant._spec import (
    COMPONENTS,
    KINDS,
    METHODS,
    PRESETS,
    SGQUANT_ALLOWED_BITS,
    DegreeBits,
    DQSettings,
    Override,
    QuantConfig,
    QuantSpec,
    sgquant_bits_for_degree,
)

__all__ = [
    # contract
    "Identity",
    "QuantContext",
    "Quantizer",
    "identity",
    # configuration
    "QuantSpec",
    "QuantConfig",
    "Override",
    "DegreeBits",
    "DQSettings",
    "PRESETS",
    "METHODS",
    "COMPONENTS",
    "KINDS",
    "OBSERVERS",
    "SGQUANT_ALLOWED_BITS",
    # factory and modules
    "make_quantizer",
    "avg_bits",
    "StatefulQuantizer",
    "FixedPointQuantizer",
    "BinaryQuantizer",
    "TernaryQuantizer",
    "UniformQuantizer",
    "LSQQuantizer",
    "AlphaQuantizer",
    "A2QQuantizer",
    "QuantStat",
    # pure functions
    "QuantPlan",
    "make_plan",
    "quant_init",
    "quant_params",
    "quant_apply",
    "pass_protected",
    "quant_to_integer",
    "QParams",
    "IntegerTensor",
    "fake_quant",
    "sign_fake_quant",
    "dequantize",
    "round_ste",
    "scale_grad",
    "qrange",
    "affine_qparams",
    "row_compact_exact",
    "SIGN_RUNNING_STATS",
    # graph-aware methods
    "in_degree",
    "dq_protect_mask",
    "dq_sample_mask",
    "dq_protect_probability",
    "sgquant_bits_for_degree",
    "a2q_memory_kb",
    "a2q_memory_penalty",
    "a2q_local_fake_quant",
    "a2q_local_grads",
    "a2q_row_error",
    "nns_select",
    "degree_bucket",
    "SmoothPropagation",
    "SmpTerms",
    "smoothness",
    "smp_loss_terms",
]
