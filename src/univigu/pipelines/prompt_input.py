# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The prompt of [`UniViGUPipeline`] (t2v, t2vt): cleaned and tokenized as `WanPipeline` does it
(`tokenize_prompts`), then encoded by umT5 into the cross-attention condition (`encode_prompt`) and tokenized for the
text stream (`prompt_text_stream`), in `UniViGUPromptInputMixin`.

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

from functools import partial
from typing import List, Optional, Tuple, Union

import torch

from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from diffusers.utils.torch_utils import get_module_execution_device


def tokenize_prompts(tokenizer, prompts: List[str], max_sequence_length: int):
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


class UniViGUPromptInputMixin:
    """The prompt in [`UniViGUPipeline`]: umT5 embeddings (`encode_prompt`, as `WanPipeline` computes them) and the
    prompt's own tokens for the text stream (`prompt_text_stream`). It uses the pipeline's tokenizer, text encoder
    and `call_default`."""

    def _tokenize(self, prompt: List[str], max_sequence_length: int):
        text_inputs = tokenize_prompts(self.tokenizer, prompt, max_sequence_length)
        return text_inputs.input_ids, text_inputs.attention_mask

    def _get_t5_prompt_embeds(
        self,
        prompt: Union[str, List[str]] = None,
        num_videos_per_prompt: int = 1,
        max_sequence_length: int = 226,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ):
        # The same computation as WanPipeline._get_t5_prompt_embeds (the parity test depends on it).
        device = device or self._execution_device
        dtype = dtype or self.text_encoder.dtype

        prompt = [prompt] if isinstance(prompt, str) else prompt
        batch_size = len(prompt)
        text_input_ids, mask = self._tokenize(prompt, max_sequence_length)
        seq_lens = mask.gt(0).sum(dim=1).long()

        model_device = get_module_execution_device(self.text_encoder)
        prompt_embeds = self.text_encoder(text_input_ids.to(model_device), mask.to(model_device)).last_hidden_state
        prompt_embeds = prompt_embeds.to(dtype=dtype, device=device)
        prompt_embeds = [u[:v] for u, v in zip(prompt_embeds, seq_lens)]
        prompt_embeds = torch.stack(
            [torch.cat([u, u.new_zeros(max_sequence_length - u.size(0), u.size(1))]) for u in prompt_embeds], dim=0
        )

        _, seq_len, _ = prompt_embeds.shape
        prompt_embeds = prompt_embeds.repeat(1, num_videos_per_prompt, 1)
        prompt_embeds = prompt_embeds.view(batch_size * num_videos_per_prompt, seq_len, -1)
        return prompt_embeds

    def encode_prompt(
        self,
        prompt: Union[str, List[str]],
        negative_prompt: Optional[Union[str, List[str]]] = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        max_sequence_length: Optional[int] = None,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
        prompt_text_ids: Optional[torch.LongTensor] = None,
        prompt_text_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.LongTensor], Optional[torch.BoolTensor]]:
        r"""
        Encodes the prompt (and, with guidance, the negative prompt; `""` by default) into umT5 hidden states, exactly
        as `WanPipeline.encode_prompt` does, and tokenizes it for the text stream of t2v ([`prompt_text_stream`]).
        What is passed in (`prompt_embeds`, ...) is returned as given.

        `max_sequence_length` defaults to the one `__call__` uses (the checkpoint's `call_defaults`, else 512).

        Returns `(prompt_embeds, negative_prompt_embeds, prompt_text_ids, prompt_text_mask)`, each an argument of
        `__call__` of the same name: encode once (under `torch.no_grad()`, as `__call__` does), then generate many
        times with `pipe(prompt_embeds=..., negative_prompt_embeds=..., prompt_text_ids=..., prompt_text_mask=...,
        ...)`, which computes what `pipe(prompt, ...)` computes. `negative_prompt_embeds` is `None` without guidance;
        the text-stream tokens are `None` when only `prompt_embeds` are given.
        """
        device = device or self._execution_device
        if max_sequence_length is None:
            max_sequence_length = self.call_default("max_sequence_length", "t2v")

        prompt = [prompt] if isinstance(prompt, str) else prompt
        if prompt is not None:
            batch_size = len(prompt)
        else:
            batch_size = prompt_embeds.shape[0]

        # the prompt and the negative prompt are embedded alike
        embed = partial(
            self._get_t5_prompt_embeds,
            num_videos_per_prompt=num_videos_per_prompt,
            max_sequence_length=max_sequence_length,
            device=device,
            dtype=dtype,
        )
        if prompt_embeds is None:
            prompt_embeds = embed(prompt=prompt)

        if do_classifier_free_guidance and negative_prompt_embeds is None:
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

            negative_prompt_embeds = embed(prompt=negative_prompt)

        if prompt_text_ids is None and prompt is not None:
            prompt_text_ids, prompt_text_mask = self.prompt_text_stream(
                prompt, num_videos_per_prompt, max_sequence_length, device
            )
        elif prompt_text_ids is not None:
            prompt_text_ids = prompt_text_ids.to(device=device, dtype=torch.long)
            if prompt_text_mask is not None:
                prompt_text_mask = prompt_text_mask.to(device=device, dtype=torch.bool)

        return prompt_embeds, negative_prompt_embeds, prompt_text_ids, prompt_text_mask

    def prompt_text_stream(
        self,
        prompt: Union[str, List[str]],
        num_videos_per_prompt: int = 1,
        max_sequence_length: int = 512,
        device: Optional[torch.device] = None,
    ) -> Tuple[torch.LongTensor, torch.BoolTensor]:
        """The prompt's own token ids (same tokenizer and cleaning as the umT5 input) and their attention mask, for
        the text stream of text-to-video; trimmed to the longest prompt of the batch."""
        device = device or self._execution_device
        prompt = [prompt] if isinstance(prompt, str) else prompt
        ids, mask = self._tokenize(prompt, max_sequence_length)
        length = max(int(mask.sum(dim=1).max()), 1)
        ids = ids[:, :length].repeat_interleave(num_videos_per_prompt, dim=0)
        mask = mask[:, :length].bool().repeat_interleave(num_videos_per_prompt, dim=0)
        return ids.to(device), mask.to(device)


__all__ = ["UniViGUPromptInputMixin", "tokenize_prompts"]
