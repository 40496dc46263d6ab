"""The model: a tiny Llama built from a config in code (offline default), or a
pretrained paddleformers causal LM from --model_name_or_path; either way
switched between FlashMask and the dense mask by --flash_mask."""
import paddle

from paddle_flashmask.integrations.paddleformers import use_flash_mask


def tiny_llama_config(vocab_size, max_seq_len, hidden_size=128, num_layers=2, num_heads=2,
                      num_kv_heads=1):
    """Head dim 64 (one the CUDA kernels are built for), grouped-query attention."""
    from paddleformers.transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                       intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
                       num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
                       max_position_embeddings=max_seq_len)


def build_model(args, vocab_size):
    """LlamaForCausalLM (or the pretrained model) with the attention mode set."""
    from paddleformers.transformers import AutoModelForCausalLM, LlamaForCausalLM

    paddle.seed(args.seed)
    if args.model_name_or_path:
        model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
    else:
        model = LlamaForCausalLM(tiny_llama_config(vocab_size, args.max_seq_len))
    use_flash_mask(model, args.flash_mask)
    if args.dtype != "float32":
        model.to(dtype=args.dtype)
    return model


def backbone(model):
    """The decoder stack (LlamaModel and the like) under a causal-LM head."""
    return getattr(model, model.base_model_prefix, model)


def causal_lm_inputs(arrays, keys=("input_ids", "position_ids", "labels")):
    """Tensors of the model's own inputs in a batch: ids, positions, labels, and
    whichever mask entry (indices or dense mask) the run mode put there."""
    mask_keys = ("attn_mask_startend_row_indices", "attention_mask")
    return {k: paddle.to_tensor(arrays[k]) for k in (*keys, *mask_keys) if k in arrays}
