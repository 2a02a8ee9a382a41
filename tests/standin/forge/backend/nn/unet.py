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

:func:`forgeify` gives the tiny UNet's blocks these forwards (``tests/standin/forgelike.py``).
"""

from backend.attention import attention_function  # noqa: F401  (by name, as Forge's unet.py does)

from tests.standin.forgelike import inference_forwards


def forgeify(unet):
    """Give ``unet``'s ``BasicTransformerBlock`` s and ``CrossAttention`` s Forge's forwards; returns ``unet``."""
    return inference_forwards(unet, lambda mask: globals()["attention_function"])
