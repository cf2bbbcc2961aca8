"""`python -m tfdistill` is the same as the `tfdistill` command."""

from tfdistill.cli import run

if __name__ == "__main__":
  run()
