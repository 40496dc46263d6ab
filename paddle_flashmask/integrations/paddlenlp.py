"""PaddleNLP 2.8 integration: FlashMask for its Llama.

PaddleNLP 2.8 predates FlashMask: its Llama has no `attn_mask_startend_row_indices`
input and no attention registry; every layer calls the module-level
`paddlenlp.transformers.llama.modeling.scaled_dot_product_attention`.
`patch_llama()` teaches that module one more kind of `attention_mask`: the int32
FlashMask indices [B, 1 | H, S, ncols]. They travel down the model where the dense
mask would (so recompute keeps working), skip the O(S^2) mask construction, and
reach our op in every layer. Bool / float masks behave exactly as before.

    from paddle_flashmask.integrations import paddlenlp as pnlp_flashmask
    pnlp_flashmask.patch_llama()
    loss = model(input_ids, position_ids=pos, labels=labels,
                 attn_mask_startend_row_indices=spec.startend_row_indices)[0]

Packed decoder data uses causal masks (1 or 2 columns); 4-column indices run non-causal.
"""
import functools
import inspect

import paddle

from ..api import flashmask_attention

INDICES_KEY = "attn_mask_startend_row_indices"


def is_startend_indices(mask):
    """FlashMask indices, as opposed to a bool / float dense mask."""
    return isinstance(mask, paddle.Tensor) and mask.dtype == paddle.int32


def patch_llama():
    """Patch paddlenlp.transformers.llama (idempotent)."""
    from paddlenlp.transformers.llama import modeling

    if getattr(modeling, "_paddle_flashmask_patched", False):
        return
    modeling.scaled_dot_product_attention = _attention(modeling.scaled_dot_product_attention)
    modeling.is_casual_mask = _not_for_indices(modeling.is_casual_mask, False)
    prepare = modeling.LlamaModel._prepare_decoder_attention_mask
    modeling.LlamaModel._prepare_decoder_attention_mask = staticmethod(_pass_indices_through(prepare))
    for cls in (modeling.LlamaModel, modeling.LlamaForCausalLM):
        cls.forward = _accept_indices(cls.forward)
    modeling._paddle_flashmask_patched = True


def _attention(original):
    """scaled_dot_product_attention with FlashMask indices routed to our op.
    q/k/v arrive as [batch, seqlen, heads, head_dim]: our layout already."""
    @functools.wraps(original)
    def attention(query_states, config, key_states, value_states, attention_mask,
                  output_attentions, alibi=None, sequence_parallel=False, reshard_layer=None,
                  **kwargs):
        if not is_startend_indices(attention_mask):
            return original(query_states, config, key_states, value_states, attention_mask,
                            output_attentions, alibi, sequence_parallel,
                            reshard_layer=reshard_layer, **kwargs)
        if alibi is not None or reshard_layer is not None or output_attentions:
            raise NotImplementedError("FlashMask indices do not combine with alibi, sep "
                                      "parallelism or output_attentions")
        bsz, q_len, num_heads, head_dim = query_states.shape
        out = flashmask_attention(query_states, key_states, value_states, attention_mask,
                                  causal=attention_mask.shape[-1] != 4)
        shape = [bsz * q_len, num_heads * head_dim] if sequence_parallel else \
            [bsz, q_len, num_heads * head_dim]
        return out.reshape(shape)

    return attention


def _not_for_indices(original, answer):
    @functools.wraps(original)
    def wrapped(attention_mask, *args, **kwargs):
        if is_startend_indices(attention_mask):
            return answer
        return original(attention_mask, *args, **kwargs)

    return wrapped


def _pass_indices_through(original):
    """_prepare_decoder_attention_mask, minus the [B, 1, S, S] build for indices."""
    @functools.wraps(original)
    def prepare(attention_mask, *args, **kwargs):
        if is_startend_indices(attention_mask):
            return attention_mask
        return original(attention_mask, *args, **kwargs)

    return prepare


def _accept_indices(forward):
    """forward(..., attn_mask_startend_row_indices=idx): idx takes the attention_mask slot.
    The wrapper advertises the new argument in its signature: PaddleNLP inspects a
    patched forward (and strips arguments it misses) and its Trainer keeps only the
    batch columns forward names."""
    @functools.wraps(forward)
    def wrapped(self, *args, **kwargs):
        indices = kwargs.pop(INDICES_KEY, None)
        if indices is not None:
            if kwargs.get("attention_mask") is not None:
                raise ValueError(f"pass either attention_mask or {INDICES_KEY}, not both")
            if indices.dtype != paddle.int32:
                indices = indices.astype("int32")
            kwargs["attention_mask"] = indices
        return forward(self, *args, **kwargs)

    params = list(inspect.signature(forward).parameters.values())
    at = next((i for i, p in enumerate(params) if p.kind == p.VAR_KEYWORD), len(params))
    extra = inspect.Parameter(INDICES_KEY, inspect.Parameter.KEYWORD_ONLY, default=None)
    wrapped.__signature__ = inspect.Signature(params[:at] + [extra] + params[at:])
    return wrapped
