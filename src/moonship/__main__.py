"""`python -m moonship`: the `moonship` command."""

from moonship_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
