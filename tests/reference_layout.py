"""Test helper: the reference checkpoint's key layout, written from the reference facts in docs/architecture.md independently of our model code
(shared by tests/test_transformer.py and tests/test_conversion.py)."""

import math


def reference_layout_shapes(
    dim=24,
    head_dim=12,
    num_layers=2,
    ffn_dim=32,
    text_dim=20,
    freq_dim=16,
    in_channels=16,
    patch=(1, 2, 2),
    vocab=30,
    mask_token=False,
    cross_attn_norm=True,
):
    """Key -> shape of a reference (WanUnifiedTransformer) state dict, written from the reference facts (docs/architecture.md),
    independently of our model: model-level modules, per-block modules, the stored text-RoPE buffer."""
    rows = vocab + (1 if mask_token else 0)
    shapes = {
        "vocab_embed.weight": (rows, dim),
        "patch_embedding.weight": (dim, in_channels, *patch),
        "patch_embedding.bias": (dim,),
        "cond_text_embedder.linear_1.weight": (dim, text_dim),
        "cond_text_embedder.linear_1.bias": (dim,),
        "cond_text_embedder.linear_2.weight": (dim, dim),
        "cond_text_embedder.linear_2.bias": (dim,),
        "scale_shift_table_v": (1, 2, dim),
        "scale_shift_table_t": (1, 2, dim),
        "video_head.proj_out.weight": (in_channels * math.prod(patch), dim),
        "video_head.proj_out.bias": (in_channels * math.prod(patch),),
        "text_head.norm_final.weight": (dim,),
        "text_head.linear.weight": (rows, dim),
        "text_head.linear.bias": (rows,),
        "rotary_emb_text.inv_freq": (head_dim // 2,),
    }
    for s in ("v", "t"):
        shapes[f"time_embedding_{s}.time_embedder.linear_1.weight"] = (dim, freq_dim)
        shapes[f"time_embedding_{s}.time_embedder.linear_1.bias"] = (dim,)
        shapes[f"time_embedding_{s}.time_embedder.linear_2.weight"] = (dim, dim)
        shapes[f"time_embedding_{s}.time_embedder.linear_2.bias"] = (dim,)
        shapes[f"time_embedding_{s}.time_proj.weight"] = (6 * dim, dim)
        shapes[f"time_embedding_{s}.time_proj.bias"] = (6 * dim,)
    for i in range(num_layers):
        b = f"blocks.{i}."
        shapes[b + "scale_shift_table"] = (1, 6, dim)
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                shapes[f"{b}{attn}.{proj}.weight"] = (dim, dim)
                shapes[f"{b}{attn}.{proj}.bias"] = (dim,)
            shapes[f"{b}{attn}.norm_q.weight"] = (dim,)
            shapes[f"{b}{attn}.norm_k.weight"] = (dim,)
        if cross_attn_norm:
            shapes[b + "norm2.weight"] = (dim,)
            shapes[b + "norm2.bias"] = (dim,)
        for ffn in ("ffn", "ffn_t"):
            shapes[f"{b}{ffn}.net.0.proj.weight"] = (ffn_dim, dim)
            shapes[f"{b}{ffn}.net.0.proj.bias"] = (ffn_dim,)
            shapes[f"{b}{ffn}.net.2.weight"] = (dim, ffn_dim)
            shapes[f"{b}{ffn}.net.2.bias"] = (dim,)
    return shapes
