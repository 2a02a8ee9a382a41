"""STAND-IN of Forge's ``backend/attention.py``: the attention kernels and the module-global ``attention_function``.

``attention_*(q, k, v, heads, mask=None, ...)`` take ``[B, N, heads*d]`` projections and return ``[B, N, heads*d]``.
Forge picks the kernel at import from the device and flags; on a CPU it picks ``attention_sub_quad``, whose chunked
softmax computes ``torch.exp(x, out=x)`` (``backend/misc/sub_quadratic_attention.py``) and so cannot be
differentiated. The stand-in's sub-quadratic kernel does the same in-place ``exp`` (in one chunk);
``attention_pytorch`` is PyTorch's ``scaled_dot_product_attention``, as in Forge.
"""

import torch


def _heads(t, heads):
    b, n, _ = t.shape
    return t.reshape(b, n, heads, -1).transpose(1, 2)


def attention_pytorch(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False):
    b, n, _ = q.shape
    out = torch.nn.functional.scaled_dot_product_attention(_heads(q, heads), _heads(k, heads), _heads(v, heads),
                                                           attn_mask=mask)
    return out.transpose(1, 2).reshape(b, n, -1)


def attention_sub_quad(query, key, value, heads, mask=None, attn_precision=None, skip_reshape=False):
    b, n, _ = query.shape
    q, k, v = _heads(query, heads), _heads(key, heads), _heads(value, heads)
    scores = q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5)
    scores = scores - scores.amax(-1, keepdim=True)
    torch.exp(scores, out=scores)  # what Forge's chunked kernel does; autograd refuses it
    out = (scores / scores.sum(-1, keepdim=True)) @ v
    return out.transpose(1, 2).reshape(b, n, -1)


attention_function = attention_sub_quad  # the CPU choice (--always-cpu)
