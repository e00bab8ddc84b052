# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The prompt of [`UniViGUPipeline`] (t2v, t2vt) as `WanPipeline` handles it: cleaned and tokenized
(`tokenize_prompts`, which training tokenizes with too), encoded by umT5 into the cross-attention condition
(`t5_prompt_embeds`, with `negative_prompts` for guidance), and its own tokens for the text stream
(`prompt_tokens`). `UniViGUPipeline.encode_prompt` puts them together.

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import torch

from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from diffusers.utils.torch_utils import get_module_execution_device


def tokenize_prompts(tokenizer, prompts: list[str], max_sequence_length: int):
    """`prompts` cleaned as `WanPipeline` cleans them (html unescape, ftfy if installed, whitespace) and tokenized
    as it tokenizes them: padded and truncated to `max_sequence_length`, with EOS. Training tokenizes its texts with
    it too, so that the model trains on the tokens the pipeline gives it."""
    return tokenizer(
        [prompt_clean(u) for u in prompts],
        padding="max_length",
        max_length=max_sequence_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )


def t5_prompt_embeds(
    tokenizer,
    text_encoder,
    prompt: str | list[str],
    num_videos_per_prompt: int = 1,
    max_sequence_length: int = 226,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """umT5 hidden states of `prompt`, `(B * num_videos_per_prompt, max_sequence_length, dim)`: each prompt's own
    tokens, then zeros. The same computation as `WanPipeline._get_t5_prompt_embeds` (the parity test depends on it)."""
    dtype = dtype or text_encoder.dtype

    prompt = [prompt] if isinstance(prompt, str) else prompt
    batch_size = len(prompt)
    text_inputs = tokenize_prompts(tokenizer, prompt, max_sequence_length)
    text_input_ids, mask = text_inputs.input_ids, text_inputs.attention_mask
    seq_lens = mask.gt(0).sum(dim=1).long()

    model_device = get_module_execution_device(text_encoder)
    prompt_embeds = text_encoder(text_input_ids.to(model_device), mask.to(model_device)).last_hidden_state
    prompt_embeds = prompt_embeds.to(dtype=dtype, device=device)
    prompt_embeds = [u[:v] for u, v in zip(prompt_embeds, seq_lens)]
    prompt_embeds = torch.stack(
        [torch.cat([u, u.new_zeros(max_sequence_length - u.size(0), u.size(1))]) for u in prompt_embeds], dim=0
    )

    _, seq_len, _ = prompt_embeds.shape
    prompt_embeds = prompt_embeds.repeat(1, num_videos_per_prompt, 1)
    prompt_embeds = prompt_embeds.view(batch_size * num_videos_per_prompt, seq_len, -1)
    return prompt_embeds


def negative_prompts(negative_prompt: str | list[str] | None, prompt: list[str] | None, batch_size: int) -> list[str]:
    """The negative prompts of a guided batch, as `WanPipeline.encode_prompt` takes them: `""` by default, a string
    for every prompt, or one per prompt."""
    negative_prompt = negative_prompt or ""
    negative_prompt = batch_size * [negative_prompt] if isinstance(negative_prompt, str) else negative_prompt
    if prompt is not None and type(prompt) is not type(negative_prompt):
        raise TypeError(
            f"`negative_prompt` should be the same type to `prompt`, but got {type(negative_prompt)} !="
            f" {type(prompt)}."
        )
    elif batch_size != len(negative_prompt):
        raise ValueError(
            f"`negative_prompt` has batch size {len(negative_prompt)}, but `prompt` has batch size "
            f"{batch_size}: pass one negative prompt per prompt (or a single string)."
        )
    return negative_prompt


def prompt_tokens(
    tokenizer, prompt: str | list[str], num_videos_per_prompt: int, max_sequence_length: int, device: torch.device
) -> tuple[torch.LongTensor, torch.BoolTensor]:
    """The prompt's own token ids (same tokenizer and cleaning as the umT5 input) and their attention mask, for the
    text stream of text-to-video; trimmed to the longest prompt of the batch, one row per video."""
    prompt = [prompt] if isinstance(prompt, str) else prompt
    tokens = tokenize_prompts(tokenizer, prompt, max_sequence_length)
    ids, mask = tokens.input_ids, tokens.attention_mask
    length = max(int(mask.sum(dim=1).max()), 1)
    ids = ids[:, :length].repeat_interleave(num_videos_per_prompt, dim=0)
    mask = mask[:, :length].bool().repeat_interleave(num_videos_per_prompt, dim=0)
    return ids.to(device), mask.to(device)


__all__ = ["negative_prompts", "prompt_tokens", "t5_prompt_embeds", "tokenize_prompts"]
