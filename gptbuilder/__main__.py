"""`python -m gptbuilder`: the command line, as `accelerate launch -m gptbuilder …` starts it in each process."""

from .cli import main

main()
