"""`python -m wordlstm` and the `wordlstm` command run the command line."""

import sys


def run() -> None:
    """Imports the CLI and runs it: a Ctrl-C while it is being imported exits 130 without a
    traceback, as one at any later instant does."""
    try:
        from wordlstm.cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
