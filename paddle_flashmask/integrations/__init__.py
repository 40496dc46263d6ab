"""Adapters that plug paddle_flashmask into training frameworks.

    from paddle_flashmask.integrations import paddleformers
    paddleformers.enable()        # our kernel becomes paddleformers' "flashmask" attention

paddleformers is PaddleNLP's successor. The adapter imports paddleformers only
when you import the adapter.
"""
