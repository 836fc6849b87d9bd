"""One module per ``peel`` subcommand; each defines ``register(subparsers)``.

Modules import their heavy dependencies (torch, cv2) inside the handler so ``peel --help`` is fast.
"""
