"""The model lifecycle: prepare data, fine-tune, evaluate and register models a spec can run on.

Everything heavy (torch, transformers, peft) is imported inside the functions that need it, so the CLI and
the registry stay quick to import; `pip install 'gptbuilder[train]'` brings what training needs.
"""
