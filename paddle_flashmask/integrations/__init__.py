"""Adapters that plug paddle_flashmask into training frameworks.

    from paddle_flashmask.integrations import paddleformers
    paddleformers.enable()        # our kernel becomes paddleformers' "flashmask" attention

    from paddle_flashmask.integrations import paddlenlp
    paddlenlp.patch_llama()       # PaddleNLP 2.8's Llama takes attn_mask_startend_row_indices

Each adapter imports its framework only when you import the adapter.
"""
