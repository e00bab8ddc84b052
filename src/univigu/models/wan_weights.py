# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Wan2.1 weights under UniViGU's names: which tensors are the text experts, and how a `WanTransformer3DModel` state
dict becomes a UniViGU one (video parts kept, text experts starting as copies of their video counterparts, the new
text tables initialised). Used by `UniViGUTransformer3DModel.from_wan*`; exported Hub folders carry this file next to
`transformer_univigu.py`, which imports it."""


import torch


def is_text_expert(name: str) -> bool:
    """Whether a UniViGU parameter belongs to the text stream that Wan does not have."""
    return (
        ".ffn_t." in name
        or name.startswith(("vocab_embed.", "text_head.", "time_embedding_t.", "scale_shift_table_t"))
    )


def wan_state_dict_to_univigu(wan_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a WanTransformer3DModel (diffusers) state dict to UniViGU names, duplicating the video parts that
    initialise the text experts. The new text-only tensors (vocab_embed, text_head) are not included."""
    out = {}
    for key, value in wan_state.items():
        if key.startswith("condition_embedder.text_embedder."):
            out["cond_text_embedder." + key[len("condition_embedder.text_embedder.") :]] = value
        elif key.startswith(("condition_embedder.time_embedder.", "condition_embedder.time_proj.")):
            rest = key[len("condition_embedder.") :]
            out["time_embedding_v." + rest] = value
            out["time_embedding_t." + rest] = value
        elif key == "scale_shift_table":
            out["scale_shift_table_v"] = value
            out["scale_shift_table_t"] = value
        elif key.startswith("proj_out."):
            out["video_head." + key] = value
        elif key.startswith("blocks.") and ".ffn." in key:
            out[key] = value
            out[key.replace(".ffn.", ".ffn_t.")] = value
        elif key.startswith(("blocks.", "patch_embedding.")):
            out[key] = value
        else:
            raise ValueError(f"Unexpected key in the Wan transformer state dict: {key!r}")
    return out


def univigu_state_from_wan(
    wan_state: dict[str, torch.Tensor], dim: int, vocab_size: int, text_mask_token: bool = False,
    seed: int | None = None, dtype: torch.dtype | None = None, cast: bool = False, share_memory: bool = False,
    vocab_init_std: float = 0.02,
) -> dict[str, torch.Tensor]:
    """Every UniViGU weight from a Wan state dict: the mapped Wan tensors plus `vocab_embed` (normal, std
    `vocab_init_std`, drawn from `seed`) and a zero text head, so that the text stream starts silent. `dtype`: of the
    new text tables (default: the first floating Wan tensor's), and with `cast` of every floating Wan tensor. With
    `share_memory` the Wan tensors themselves are returned, except that each text expert starting as a copy of a video
    module gets its own storage."""
    if dtype is None:
        dtype = next((v.dtype for v in wan_state.values() if v.is_floating_point()), torch.float32)
    state, used = {}, set()
    for key, value in wan_state_dict_to_univigu(wan_state).items():
        if cast and value.is_floating_point() and value.dtype != dtype:
            value = value.to(dtype)
        if share_memory and id(value) in used:  # a text expert starting as a copy of a video module
            value = value.clone()
        used.add(id(value))
        state[key] = value
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    rows = vocab_size + (1 if text_mask_token else 0)
    state["vocab_embed.weight"] = (torch.randn(rows, dim, generator=generator) * vocab_init_std).to(dtype)
    state["text_head.norm_final.weight"] = torch.ones(dim, dtype=dtype)
    state["text_head.linear.weight"] = torch.zeros(rows, dim, dtype=dtype)
    state["text_head.linear.bias"] = torch.zeros(rows, dtype=dtype)
    return state
