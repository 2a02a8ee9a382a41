"""STAND-IN of Forge's ``backend/nn/unet.py`` behaviour, laid over the tiny ldm UNet of the tests.

Forge's ``IntegratedUNet2DConditionModel`` has the ldm module layout (``input_blocks``/``middle_block``/
``output_blocks``, ``SpatialTransformer`` > ``BasicTransformerBlock`` > ``attn1``/``attn2`` ``CrossAttention``) and
differs from ldm where it matters to A-STAR:

* ``CrossAttention.forward(x, context=None, value=None, mask=None, transformer_options=None)`` projects ``q``, ``k``,
  ``v`` and calls the module-global ``attention_function(q, k, v, heads, mask)``, which this module imported from
  ``backend.attention`` by name (patching ``backend.attention.attention_function`` does not reach it);
* ``BasicTransformerBlock._forward`` adds each sub-layer's output to the residual stream IN PLACE (``x += n``) after
  ``norm1``/``norm2``/``norm3`` have read it, and calls
  ``self.attn2(n, context=context, value=..., transformer_options=...)`` (``context`` as a keyword).

:func:`forgeify` gives the tiny UNet's blocks these forwards (per instance; the weights and module names stay).
"""

import types

from backend.attention import attention_function  # noqa: F401  (by name, as Forge's unet.py does)


def _attention_forward(self, x, context=None, value=None, mask=None, transformer_options=None):
    q = self.to_q(x)
    context = x if context is None else context
    k = self.to_k(context)
    v = self.to_v(value if value is not None else context)
    out = globals()["attention_function"](q, k, v, self.heads, mask)
    return self.to_out(out)


def _block_forward(self, x, context=None, transformer_options=None):
    n = self.norm1(x)
    n = self.attn1(n, context=None, value=None, transformer_options=transformer_options)
    x += n
    n = self.norm2(x)
    n = self.attn2(n, context=context, value=None, transformer_options=transformer_options)
    x += n
    x_skip = x
    x = self.ff(self.norm3(x))
    x += x_skip
    return x


def forgeify(unet):
    """Give ``unet``'s ``BasicTransformerBlock`` s and ``CrossAttention`` s Forge's forwards; returns ``unet``."""
    for module in unet.modules():
        name = type(module).__name__
        if name == "BasicTransformerBlock":
            module.forward = types.MethodType(_block_forward, module)
        elif name in ("CrossAttention", "MemoryEfficientCrossAttention"):
            module.forward = types.MethodType(_attention_forward, module)
    return unet
