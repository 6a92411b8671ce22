"""`python -m wordlstm` runs the command line."""

from wordlstm.cli import main

main()
