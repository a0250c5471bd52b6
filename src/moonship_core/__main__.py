"""`python -m moonship_core`: the `moonship` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
