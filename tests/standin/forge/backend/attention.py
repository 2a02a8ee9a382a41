"""STAND-IN of Forge's ``backend/attention.py``: the attention kernels and the module-global ``attention_function``.

``attention_*(q, k, v, heads, mask=None, ...)`` take ``[B, N, heads*d]`` projections and return ``[B, N, heads*d]``
(``tests/standin/forgelike.py``). Forge picks the kernel at import from the device and flags; on a CPU it picks
``attention_sub_quad``, whose chunked softmax computes ``torch.exp(x, out=x)``
(``backend/misc/sub_quadratic_attention.py``) and so cannot be differentiated; ``attention_pytorch`` is PyTorch's
``scaled_dot_product_attention``, as in Forge.
"""

from tests.standin.forgelike import attention_pytorch, attention_sub_quad  # noqa: F401

attention_function = attention_sub_quad  # the CPU choice (--always-cpu)
