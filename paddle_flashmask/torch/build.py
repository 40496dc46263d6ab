"""`python -m paddle_flashmask.torch.build [args]`: the same as
`python custom_ops/torch/build.py [args]` (needs the repository checkout:
the core sources live under custom_ops/)."""
import os
import runpy
import sys


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = os.path.join(root, "custom_ops", "torch", "build.py")
    if not os.path.exists(script):
        sys.exit("paddle_flashmask.torch.build: custom_ops/torch/build.py not found; "
                 "run it from a checkout of the repository")
    sys.argv = [script] + sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
