"""`python -m anipop.cli ...`: the same command as the `anipop` console script (handy when the venv's bin is not on
PATH)."""

from anipop.cli import main

main()
