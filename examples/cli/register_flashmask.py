"""`custom_register_path` for paddleformers-cli: our FlashMask op becomes the
"flashmask" attention of every model the run builds."""
from paddle_flashmask.integrations import paddleformers

paddleformers.enable()
