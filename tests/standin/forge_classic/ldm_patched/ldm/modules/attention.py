"""STAND-IN of Forge Classic's ``ldm_patched/ldm/modules/attention.py``: the kernels, the module globals
``optimized_attention`` and ``optimized_attention_masked`` that its ``CrossAttention`` calls, and Forge's block and
attention forwards.

The module picks the kernel at import (sage, xformers, PyTorch SDPA, split, else ``attention_sub_quad``; on a CPU
the last, whose chunked softmax computes ``torch.exp(x, out=x)``), and ``CrossAttention.forward(x, context=None,
value=None, mask=None, transformer_options=None)`` calls ``optimized_attention(q, k, v, self.heads)`` (with a mask
``optimized_attention_masked``); ``BasicTransformerBlock._forward`` adds to the residual stream in place
(``x += n``) after ``norm1``/``norm2``/``norm3`` read it. :func:`patch_forwards` gives the tiny UNet these forwards
(``tests/standin/forgelike.py``).
"""

from tests.standin.forgelike import attention_pytorch, attention_sub_quad, inference_forwards  # noqa: F401

optimized_attention = attention_sub_quad  # the CPU choice (--always-cpu)
optimized_attention_masked = optimized_attention


def patch_forwards(unet):
    """Give ``unet``'s blocks Forge's forwards, calling this module's globals at call time; returns ``unet``."""
    return inference_forwards(
        unet, lambda mask: globals()["optimized_attention" if mask is None else "optimized_attention_masked"])
